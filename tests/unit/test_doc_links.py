"""Every link in the README and in docs/ that points into the repository
resolves: the file exists, and a ``#fragment`` names a heading of it. A
clone is the whole documentation; nothing points outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```", re.S)


def anchors(path: Path) -> set[str]:
    """GitHub's anchor of each heading of ``path``."""
    found = set()
    for line in CODE.sub("", path.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            found.add(title.replace(" ", "-"))
    return found


def links(path: Path) -> list[str]:
    return LINK.findall(CODE.sub("", path.read_text()))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_link_inside_the_repository_resolves(document: Path) -> None:
    broken = []
    for target in links(document):
        if re.match(r"^[a-z]+:", target):
            continue
        file, _, fragment = target.partition("#")
        resolved = (document.parent / file).resolve() if file else document
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            broken.append(f"{target}: no such file in the repository")
        elif (
            fragment and resolved.suffix == ".md" and fragment not in anchors(resolved)
        ):
            broken.append(f"{target}: no heading #{fragment}")
    assert not broken, broken


CLIMB = re.compile(r"(?:\.\./)+[\w./-]*")
SHIPPED = ("domain", "infrastructure", "projections", "web", "idemsync", "migrations")


def test_no_document_or_shipped_module_names_a_path_outside_the_repository() -> None:
    """A relative path that climbs (in prose, a comment or a docstring, not
    only in a link) must land on a file of the repository: anything else
    names something a clone does not have."""
    places = [*DOCUMENTS, *(p for top in SHIPPED for p in (ROOT / top).rglob("*.py"))]
    outside = []
    for path in places:
        for climb in CLIMB.findall(path.read_text(errors="replace")):
            resolved = (path.parent / climb).resolve()
            if ROOT not in resolved.parents or not resolved.exists():
                outside.append(f"{path.relative_to(ROOT)}: {climb}")
    assert not outside, outside


def test_the_readme_s_first_screen_is_what_it_is_and_the_quickstart() -> None:
    first = "\n".join((ROOT / "README.md").read_text().splitlines()[:60])
    assert "make run" in first and "docker compose" in first
    assert "pip install" in first
