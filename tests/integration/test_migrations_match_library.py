"""Alembic's 0001 and 0004 create eventsourcing's tables exactly as
eventsourcing would (the event table; the snapshot table).

The application runs with ``CREATE_TABLE=n``, so these tests are what stands
between a library upgrade and a schema the library cannot use.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from eventsourcing.utils import get_topic
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
PG_SERVER = "host=127.0.0.1 port=5432 user=postgres"
DELIVERY_COLUMNS = [
    "source",
    "idempotency_key",
    "received_at",
    "outcome",
    "reason",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "answer",
    "payload",
    "headers",
    "resolution",
    "resolution_reason",
    "resolved_at",
    "attempts",
    "last_seen_at",
    "payload_sha256",
    "headers_sha256",
    "redacted_at",
]


class Thing(Aggregate):
    """A minimal aggregate, to write and read through the library."""

    @event("Made")
    def __init__(self, label: str) -> None:
        self.label = label

    @event("Relabelled")
    def relabel(self, label: str) -> None:
        self.label = label


class IdemsyncApp(Application):
    """An application with the name idemsync runs under."""

    name = "idemsync"


class SnapshottingApp(IdemsyncApp):
    """The same, with a snapshot store (as ``SyncService`` has)."""

    name = "idemsync"
    is_snapshotting_enabled = True


class IdemsyncSQLiteRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder on the idemsync_events table."""

    def __init__(
        self, datastore: SQLiteDatastore, events_table_name: str = "idemsync_events"
    ) -> None:
        super().__init__(datastore, events_table_name)


def migrate(url: str, revision: str = "head") -> None:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logging"] = False
    if revision == "base":
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


def save_and_read_back(env: dict[str, str]) -> None:
    app = IdemsyncApp(env=env)
    try:
        thing = Thing("first")
        thing.relabel("second")
        recordings = app.save(thing)
        assert [r.notification.id for r in recordings] == [1, 2]
        assert app.repository.get(thing.id).label == "second"
        assert app.repository.get(thing.id, version=1).label == "first"
        notifications = app.recorder.select_notifications(start=1, limit=10)
        assert [n.id for n in notifications] == [1, 2]
        copy: Thing = app.repository.get(thing.id, version=1)
        copy.relabel("conflict")
        with pytest.raises(IntegrityError):
            app.save(copy)
    finally:
        app.close()


def pg_connect(
    dbname: str, *, autocommit: bool = False
) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(
        f"{PG_SERVER} dbname={dbname} connect_timeout=3", autocommit=autocommit
    )


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    try:
        admin = pg_connect("postgres", autocommit=True)
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    name = f"idemsync_test_migrations_{os.getpid()}"
    ident = sql.Identifier(name)
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        try:
            yield name
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))


@pytest.fixture
def empty_postgres(postgres_database: str) -> str:
    with pg_connect(postgres_database, autocommit=True) as c:
        c.execute("DROP SCHEMA public CASCADE")
        c.execute("CREATE SCHEMA public")
    return postgres_database


def pg_url(dbname: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{dbname}"


def pg_env(dbname: str, create_table: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_PASSWORD": "",
        "CREATE_TABLE": create_table,
    }


PG_CATALOG_QUERIES = {
    "columns": "SELECT column_name, data_type, is_nullable, column_default "
    "FROM information_schema.columns WHERE table_name = %(t)s "
    "ORDER BY ordinal_position",
    "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid = to_regclass(%(t)s) ORDER BY conname",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes "
    "WHERE tablename = %(t)s ORDER BY indexname",
    "options": "SELECT reloptions FROM pg_class WHERE relname = %(t)s",
    "type": "SELECT a.attname, format_type(a.atttypid, a.atttypmod) "
    "FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid "
    "WHERE t.typname = 'stored_event_uuid' ORDER BY a.attnum",
    "sequences": "SELECT sequence_name, data_type, start_value, increment "
    "FROM information_schema.sequences ORDER BY sequence_name",
}


def pg_catalog(dbname: str, table: str = "idemsync_events") -> dict[str, list[Any]]:
    with pg_connect(dbname) as conn:
        return {
            name: conn.execute(query, {"t": table}).fetchall()
            for name, query in PG_CATALOG_QUERIES.items()
        }


def pg_tables(dbname: str) -> list[str]:
    with pg_connect(dbname) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "ORDER BY tablename"
        ).fetchall()
    return [row[0] for row in rows]


@pytest.mark.postgres
def test_the_postgresql_event_table_is_the_one_eventsourcing_creates(
    empty_postgres: str,
) -> None:
    migrate(pg_url(empty_postgres))
    migrated = pg_catalog(empty_postgres)
    assert {"alembic_version", "deliveries", "idemsync_events"} <= set(
        pg_tables(empty_postgres)
    )
    migrate(pg_url(empty_postgres), "base")
    assert pg_tables(empty_postgres) == ["alembic_version"]
    assert pg_catalog(empty_postgres)["type"] == []
    IdemsyncApp(env=pg_env(empty_postgres, create_table="y")).close()
    assert migrated == pg_catalog(empty_postgres)
    assert migrated["columns"]


@pytest.mark.postgres
def test_eventsourcing_writes_and_reads_on_the_migrated_postgresql_database(
    empty_postgres: str,
) -> None:
    migrate(pg_url(empty_postgres))
    save_and_read_back(pg_env(empty_postgres, create_table="n"))


@pytest.mark.postgres
def test_the_postgresql_deliveries_table_has_the_contract_columns(
    empty_postgres: str,
) -> None:
    migrate(pg_url(empty_postgres))
    with pg_connect(empty_postgres) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'deliveries' ORDER BY ordinal_position"
        ).fetchall()
    assert [row[0] for row in rows] == DELIVERY_COLUMNS


def sqlite_schema(
    path: Path, table: str = "idemsync_events"
) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master "
            "WHERE tbl_name = ? ORDER BY name",
            (table,),
        ).fetchall()
    conn.close()
    return rows


def sqlite_env(path: Path, create_table: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(path),
        "CREATE_TABLE": create_table,
        "APPLICATION_RECORDER_TOPIC": get_topic(IdemsyncSQLiteRecorder),
    }


def test_the_sqlite_event_table_is_the_one_eventsourcing_creates(
    tmp_path: Path,
) -> None:
    migrated, created = tmp_path / "migrated.db", tmp_path / "created.db"
    migrate(f"sqlite:///{migrated}")
    IdemsyncApp(env=sqlite_env(created, create_table="y")).close()
    assert sqlite_schema(migrated) == sqlite_schema(created)
    assert sqlite_schema(migrated)


def test_eventsourcing_writes_and_reads_on_the_migrated_sqlite_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "idemsync.db"
    migrate(f"sqlite:///{path}")
    save_and_read_back(sqlite_env(path, create_table="n"))


def test_the_sqlite_downgrade_removes_every_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'idemsync.db'}"
    migrate(url)
    migrate(url, "base")
    with sqlite3.connect(tmp_path / "idemsync.db") as conn:
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert [row[0] for row in names] == ["alembic_version"]
    conn.close()


def save_snapshot_and_read_back(env: dict[str, str]) -> None:
    app = SnapshottingApp(env=env)
    try:
        thing = Thing("first")
        thing.relabel("second")
        app.save(thing)
        app.take_snapshot(thing.id, version=1)
        assert app.snapshots is not None
        (snapshot,) = app.snapshots.get(thing.id)
        assert snapshot.originator_version == 1
        assert app.repository.get(thing.id).label == "second"
        assert app.repository.get(thing.id, version=1).label == "first"
        notifications = app.recorder.select_notifications(start=1, limit=10)
        assert [n.id for n in notifications] == [1, 2]
    finally:
        app.close()


@pytest.mark.postgres
def test_the_postgresql_snapshot_table_is_the_one_eventsourcing_creates(
    empty_postgres: str,
) -> None:
    migrate(pg_url(empty_postgres))
    migrated = pg_catalog(empty_postgres, "idemsync_snapshots")
    migrate(pg_url(empty_postgres), "base")
    assert pg_tables(empty_postgres) == ["alembic_version"]
    SnapshottingApp(env=pg_env(empty_postgres, create_table="y")).close()
    assert "idemsync_snapshots" in pg_tables(empty_postgres)
    assert migrated == pg_catalog(empty_postgres, "idemsync_snapshots")
    assert migrated["columns"]


@pytest.mark.postgres
def test_eventsourcing_takes_and_reads_snapshots_on_the_migrated_postgresql_database(
    empty_postgres: str,
) -> None:
    migrate(pg_url(empty_postgres))
    save_snapshot_and_read_back(pg_env(empty_postgres, create_table="n"))


def idemsync_sqlite_env(path: Path, create_table: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "infrastructure.persistence.sqlite:IdemsyncSQLiteFactory",
        "SQLITE_DBNAME": str(path),
        "CREATE_TABLE": create_table,
    }


def test_the_sqlite_snapshot_table_is_the_one_eventsourcing_creates_named_like_the_event_table(  # noqa: E501
    tmp_path: Path,
) -> None:
    migrated, created = tmp_path / "migrated.db", tmp_path / "created.db"
    migrate(f"sqlite:///{migrated}")
    schema = sqlite_schema(migrated, "idemsync_snapshots")
    assert schema
    # The library's own SQLite name is not prefixed by the application's.
    SnapshottingApp(env=sqlite_env(created, create_table="y")).close()
    library = sqlite_schema(created, "stored_snapshots")
    renamed = [
        tuple((v or "").replace("stored_snapshots", "idemsync_snapshots") for v in row)
        for row in library
    ]
    assert renamed == schema
    # idemsync's factory makes the library's table under the idemsync name.
    ours = tmp_path / "ours.db"
    SnapshottingApp(env=idemsync_sqlite_env(ours, create_table="y")).close()
    assert sqlite_schema(ours, "idemsync_snapshots") == schema


def test_eventsourcing_takes_and_reads_snapshots_on_the_migrated_sqlite_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "idemsync.db"
    migrate(f"sqlite:///{path}")
    save_snapshot_and_read_back(idemsync_sqlite_env(path, create_table="n"))
