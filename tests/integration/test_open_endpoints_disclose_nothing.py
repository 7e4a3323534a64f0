"""``/healthz`` and ``/readyz`` are open (no token): when the store is down
or behind the schema they say so in words that tell a stranger nothing: not
the database URL, host, port, user, database name or file path, nor the
driver's error (issue 13). The detail goes to the server log. Both backends.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from infrastructure.persistence.database import NOT_AT_HEAD, UNREACHABLE, Database
from tests.server_process import free_port
from tests.store import Store
from web.state import app_state


def fragments(url: str) -> set[str]:
    """What of a database URL must not be told: every part of it."""
    parts = urlsplit(url)
    told = {url, parts.netloc, parts.path, parts.path.lstrip("/")}
    told |= {parts.hostname or "", parts.username or "", parts.password or ""}
    if parts.port:
        told.add(str(parts.port))
    if parts.scheme == "sqlite":
        told |= {Path(parts.path).name, Path(parts.path).parent.name}
    return {part for part in told if len(part) >= 3}


def assert_discloses_nothing(body: str, url: str) -> None:
    lowered = body.lower()
    for part in fragments(url):
        assert part.lower() not in lowered, (part, body)
    for driver in ("psycopg", "sqlite", "operationalerror", "connection", "port"):
        assert driver not in lowered, (driver, body)


def test_readyz_behind_the_head_revision_names_the_command_not_the_store(
    client: TestClient,
    database_url: str,
    store: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with store.database.engine().begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    with caplog.at_level(logging.WARNING, logger="idemsync.health"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": NOT_AT_HEAD}
    assert_discloses_nothing(response.text, database_url)
    detail = Database(database_url).describe()
    assert any(detail in record.getMessage() for record in caplog.records)


@pytest.fixture
def unreachable_url(database_url: str, tmp_path: Path) -> str:
    """A store of the same backend that cannot be opened: a PostgreSQL
    server that does not listen (with a user, a password and a database
    name), or a SQLite "file" that is a directory."""
    if database_url.startswith("sqlite"):
        directory = tmp_path / "private-store-dir" / "orders.db"
        directory.mkdir(parents=True)
        return f"sqlite:///{directory}"
    return f"postgresql://billing_owner:hunter2pw@127.0.0.1:{free_port()}/ledgerdb"


def test_readyz_on_an_unreachable_store_says_only_store_unreachable(
    client: TestClient, unreachable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = client.app
    working = app_state(app).database
    app_state(app).database = Database(unreachable_url)  # type: ignore[attr-defined]
    try:
        with caplog.at_level(logging.WARNING, logger="idemsync.health"):
            ready = client.get("/readyz")
            health = client.get("/healthz")
    finally:
        app_state(app).database.close()  # type: ignore[attr-defined]
        app_state(app).database = working  # type: ignore[attr-defined]
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": UNREACHABLE}
    assert_discloses_nothing(ready.text, unreachable_url)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert_discloses_nothing(health.text, unreachable_url)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "is unreachable" in logged
    assert "hunter2pw" not in logged  # the log names the store, not its password
