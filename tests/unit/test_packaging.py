"""pyproject.toml lists every package by hand (the top-level ``migrations/``
ships as ``infrastructure.migrations``): a package folder added without
being listed would be missing from the wheel, and only an installed
server would find out."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("domain", "idemsync", "infrastructure", "projections", "web")


def project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def test_every_package_folder_is_listed_for_the_wheel_and_nothing_else() -> None:
    setuptools = project()["tool"]["setuptools"]  # type: ignore[index]
    mapped = {folder: name for name, folder in setuptools["package-dir"].items()}
    found = set()
    for top in (*SHIPPED, "migrations"):
        for init in (ROOT / top).rglob("__init__.py"):
            folder = init.parent.relative_to(ROOT).as_posix()
            found.add(mapped.get(folder, folder.replace("/", ".")))
    assert sorted(setuptools["packages"]) == sorted(found)


def test_the_example_configuration_and_migrations_are_package_data() -> None:
    data = project()["tool"]["setuptools"]["package-data"]  # type: ignore[index]
    assert "idemsync.example.toml" in data["infrastructure"]
    assert (ROOT / "infrastructure" / "idemsync.example.toml").is_file()
    assert "script.py.mako" in data["infrastructure.migrations"]
