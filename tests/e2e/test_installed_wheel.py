"""The wheel, installed as a user installs it: built from the checkout,
installed into a fresh virtualenv outside it, and run from another
directory (no checkout on ``sys.path``): ``--version``, ``db upgrade``,
``config check`` with the shipped example configuration, ``serve``, and a
delivery signed with the partner's library, then its duplicate.

It needs the package index (or pip's cache) for the runtime dependencies;
under ``CI=true`` a failure to install fails the test.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.partner import Partner
from tests.server_process import free_port, tail

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), "."],
        ROOT,
        dict(os.environ),
    )
    (built,) = dist.glob("idemsync-*.whl")
    return built


def test_the_wheel_carries_what_a_server_needs_and_no_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "infrastructure/migrations/env.py",
        "infrastructure/migrations/script.py.mako",
        "infrastructure/migrations/versions/0001_initial.py",
        "infrastructure/idemsync.example.toml",
        "web/static/dashboard.html",
        "web/static/uplot/uPlot.iife.min.js",
        "idemsync/cli.py",
    ):
        assert needed in names, needed
    assert any(name.endswith("licenses/LICENSE") for name in names)
    tops = {name.split("/")[0] for name in names}
    assert not tops & {"tests", "bench", "migrations"}, tops


@pytest.mark.e2e
@pytest.mark.slow
def test_an_installed_wheel_migrates_serves_and_answers_a_retry_from_any_directory(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ))
    bin_ = venv / "bin"
    install = [
        str(bin_ / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "-c",
        str(ROOT / "constraints.txt"),
        str(wheel),
    ]
    run(install, tmp_path, dict(os.environ))

    work = tmp_path / "elsewhere"
    work.mkdir()
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("IDEMSYNC_", "PYTHON", "VIRTUAL_ENV"))
    }
    env |= {
        "IDEMSYNC_DATABASE_URL": f"sqlite:///{work / 'var' / 'idemsync.db'}",
        "IDEMSYNC_DEMO_SECRET": secret,
        "PATH": f"{bin_}:{env.get('PATH', '')}",
    }
    idemsync = str(bin_ / "idemsync")

    assert run([idemsync, "--version"], work, env).strip().startswith("idemsync 0.")
    head = max(p.name[:4] for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    assert head in run([idemsync, "db", "upgrade"], work, env), "migrated to head"
    checked = run([idemsync, "config", "check"], work, env)
    assert "idemsync.example.toml: ok" in checked, checked
    assert str(venv) in checked, "the example configuration came from the wheel"

    port = free_port()
    log = work / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [idemsync, "serve", "--port", str(port)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert server.poll() is None, tail(log)
            try:
                if httpx.get(f"{base}/readyz", timeout=1.0).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, tail(log)
            time.sleep(0.2)
        assert httpx.get(f"{base}/dashboard", timeout=5).is_success
        sent = Partner(secret).order_created("ord_wheel")
        first = httpx.post(
            f"{base}/webhooks/demo", content=sent.body, headers=sent.headers
        )
        again = httpx.post(
            f"{base}/webhooks/demo", content=sent.body, headers=sent.headers
        )
    finally:
        server.terminate()
        server.wait(30)
    assert first.status_code == 200, (first.text, tail(log))
    assert first.json()["outcome"] == "applied"
    assert again.json()["outcome"] == "duplicate"
    assert again.headers["idempotent-replayed"] == "true"
