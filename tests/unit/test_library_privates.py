"""The private members of libraries idemsync relies on, pinned: the
recorders override eventsourcing's ``_insert_events`` and call its
``_lock_table``, ``_notify_channel`` and ``_insert_stored_events`` (one
transaction for events, ledger rows and delivery records), and the
PostgreSQL factory replaces psycopg-pool's ``_check``. A new version of
either library may move them without notice: this test fails first, naming
what to look at, instead of a server failing in production."""

from __future__ import annotations

import importlib.metadata
import inspect
from pathlib import Path

from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
)
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg_pool import ConnectionPool

ROOT = Path(__file__).resolve().parents[2]


def pinned(distribution: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == distribution:
            return version.strip()
    raise AssertionError(f"{distribution} is not pinned in constraints.txt")


def test_the_libraries_whose_privates_we_use_are_the_pinned_versions() -> None:
    for distribution in ("eventsourcing", "psycopg-pool"):
        installed = importlib.metadata.version(distribution)
        assert installed == pinned(distribution), (
            f"{distribution} {installed} is not the pinned {pinned(distribution)}: "
            "check infrastructure/persistence/{postgres,sqlite}.py's use of its "
            "private members, then update the pin and this test"
        )


def test_eventsourcing_s_private_recorder_methods_are_as_we_call_them() -> None:
    lock = inspect.signature(PostgresApplicationRecorder._lock_table)
    assert list(lock.parameters) == ["self", "curs"]
    notify = inspect.signature(PostgresApplicationRecorder._notify_channel)
    assert list(notify.parameters) == ["self", "curs"]
    insert = inspect.signature(PostgresAggregateRecorder._insert_stored_events)
    assert list(insert.parameters)[:3] == ["self", "curs", "stored_events"]
    sqlite_insert = inspect.signature(SQLiteApplicationRecorder._insert_events)
    assert list(sqlite_insert.parameters)[:3] == ["self", "c", "stored_events"]


def test_psycopg_pool_keeps_its_connection_check_in_check() -> None:
    pool = ConnectionPool("", open=False, check=ConnectionPool.check_connection)
    assert pool._check is ConnectionPool.check_connection
