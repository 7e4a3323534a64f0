"""``idemsync serve`` as a user runs it: a real process, a real socket, on
both backends (specification §s 2 and 4)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_SERVER, pg_execute, postgres_or_skip
from tests.e2e.conftest import Server, server_env
from tests.partner import Partner
from tests.server_process import free_port, serve_command
from tests.store import Store

pytestmark = pytest.mark.e2e


def test_a_signed_webhook_is_applied_over_the_socket_and_its_retry_is_a_duplicate(
    server: Server, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_e2e", customer_id="cus_e2e", total_cents=4200)
    url = f"{server.base_url}/webhooks/acme"
    with httpx.Client(timeout=10) as client:
        first = client.post(url, content=request.body, headers=request.headers)
        again = client.post(url, content=request.body, headers=request.headers)

    assert first.status_code == 200, first.text
    assert first.json() == {
        "outcome": "applied",
        "source": "acme",
        "key": request.key,
        "aggregate": {
            "type": "order",
            "id": "ord_e2e",
            "namespace": "acme",
            "version": 2,
        },
    }
    assert "idempotent-replayed" not in first.headers
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == {
        "outcome": "duplicate",
        "source": "acme",
        "key": request.key,
        "first": first.json(),
    }
    assert store.keys() == {("acme", request.key)}
    assert store.count("idemsync_events") == 3  # Tracked, Created, Receipt.Issued


def test_readyz_is_200_on_a_migrated_store(server: Server) -> None:
    response = httpx.get(f"{server.base_url}/readyz", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that exists (PostgreSQL) or not (SQLite) but has no schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'idemsync.db'}"
        return
    postgres_or_skip()
    name = f"idemsync_empty_{uuid.uuid4().hex[:8]}"
    pg_execute(f"CREATE DATABASE {name}")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_serve_refuses_an_unmigrated_database_and_names_the_command_to_run(
    unmigrated_url: str, secret: str, tmp_path: Path
) -> None:
    port = free_port()
    finished = subprocess.run(
        serve_command(port),
        env=server_env(tmp_path, unmigrated_url, secret),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode != 0, output
    assert "idemsync db upgrade" in output, output
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    if unmigrated_url.startswith("sqlite:///"):
        path = Path(unmigrated_url.removeprefix("sqlite:///"))
        assert not path.exists(), "refusing to serve must not create the database"


def test_serve_on_a_port_in_use_says_so_before_starting(
    server: Server, secret: str, tmp_path: Path
) -> None:
    finished = subprocess.run(
        serve_command(server.port),
        env=server.env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert finished.returncode == 2
    assert f"cannot serve: 127.0.0.1:{server.port}" in finished.stderr
    assert "Application startup" not in finished.stdout + finished.stderr
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).is_success


def test_audit_export_into_a_pipe_closed_early_ends_quietly(
    server: Server, partner: Partner, tmp_path: Path
) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for n in range(200):  # ~600 events: more than a pipe holds
            sent = partner.order_created(f"ord_pipe{n}")
            client.post("/webhooks/acme", content=sent.body, headers=sent.headers)
    command = [*serve_command(0)[:3], "audit", "export"]
    export = subprocess.Popen(
        command,
        env=server.env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert export.stdout is not None and export.stderr is not None
    first = export.stdout.readline()
    export.stdout.close()  # as `| head -1` does
    errors = export.stderr.read().decode()
    assert export.wait(60) == 141
    assert first.startswith(b"{")
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
