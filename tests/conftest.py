"""Shared fixtures: real databases (a SQLite file and a PostgreSQL database per
test, both migrated by Alembic), settings, the ASGI app and a partner that
signs with the reference ``standardwebhooks`` library.

PostgreSQL is at ``IDEMSYNC_TEST_PG`` (default ``postgresql://postgres@
127.0.0.1:5432``). Without it the PostgreSQL cases skip with one line saying
why, except when ``CI=true``: then they fail.
"""

from __future__ import annotations

import base64
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from infrastructure.persistence.database import Database
from infrastructure.settings import Settings
from tests.partner import Partner, make_settings
from tests.store import Store
from web.app import create_app

POSTGRES_NOTE = pytest.StashKey[str]()
PG_SERVER = os.environ.get("IDEMSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, in one line; None when it answers."""
    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except psycopg.OperationalError as error:
        first_line = str(error).strip().splitlines()[0]
        return f"PostgreSQL not reachable at {PG_SERVER}: {first_line}"
    return None


def postgres_or_skip() -> None:
    """Skip (or, in CI, fail) when PostgreSQL does not answer."""
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {problem}")
    pytest.skip(problem)


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """On a laptop without PostgreSQL, leave its tests out and say why once
    (at the end of the run). Under CI=true they run, and fail."""
    if os.environ.get("CI") == "true":
        return
    needs_postgres = [item for item in items if item.get_closest_marker("postgres")]
    if not needs_postgres:
        return
    problem = postgres_problem()
    if problem is None:
        return
    config.hook.pytest_deselected(items=needs_postgres)
    items[:] = [item for item in items if not item.get_closest_marker("postgres")]
    config.stash[POSTGRES_NOTE] = (
        f"{len(needs_postgres)} PostgreSQL tests not run: {problem} "
        "(set IDEMSYNC_TEST_PG, or start PostgreSQL)"
    )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    note = config.stash.get(POSTGRES_NOTE, None)
    if note:
        terminalreporter.write_line(note, yellow=True)


def pg_execute(statement: str, dbname: str = "postgres") -> None:
    with psycopg.connect(f"{PG_SERVER}/{dbname}", autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database migrated once; each test copies it."""
    postgres_or_skip()
    name = f"idemsync_tpl_{os.getpid()}"
    pg_execute(f"DROP DATABASE IF EXISTS {name}")
    pg_execute(f"CREATE DATABASE {name}")
    Database(f"{PG_SERVER}/{name}").upgrade()
    yield name
    pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "idemsync.db"
    Database(f"sqlite:///{path}").upgrade()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of each backend."""
    if request.param == "sqlite":
        path = tmp_path / "idemsync.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    yield from _postgres_database(request)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, for tests of several server
    processes (mark them ``postgres``)."""
    yield from _postgres_database(request)


def _postgres_database(request: pytest.FixtureRequest) -> Iterator[str]:
    template = request.getfixturevalue("pg_template")
    name = f"idemsync_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    pg_execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield f"{PG_SERVER}/{name}"
    pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def settings(database_url: str, secret: str) -> Settings:
    return make_settings(database_url, secret, max_body_bytes=64 * 1024)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def partner(secret: str) -> Partner:
    return Partner(secret)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The test's database, to read and write it directly."""
    database = Database(database_url)
    yield database.engine()
    database.close()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """The test's store, reading objects in the namespace of ``settings``'
    source ``acme`` (its name)."""
    inspector = Store(database_url, namespace="acme")
    yield inspector
    inspector.close()
