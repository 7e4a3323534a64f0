"""The benchmarks' databases and the options that choose them: a SQLite
file in a temporary directory, a scratch PostgreSQL database (created and
dropped here), ``--postgres`` (the server) and ``--backends``."""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from infrastructure.persistence.database import Database

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432"
BACKENDS = ("sqlite", "postgres")


@contextmanager
def sqlite_database() -> Iterator[Database]:
    with tempfile.TemporaryDirectory(prefix="idemsync-bench-") as directory:
        yield Database(f"sqlite:///{directory}/bench.db")


@contextmanager
def postgres_database(server: str) -> Iterator[Database]:
    """A scratch database on ``server``, dropped afterwards."""
    name = f"idemsync_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield Database(f"{server}/{name}", pool_size=2)
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def unreachable(server: str) -> psycopg.OperationalError | None:
    """Why PostgreSQL at ``server`` cannot be reached, or None when it can
    (a benchmark then skips the backend, saying why)."""
    try:
        psycopg.connect(f"{server}/postgres", connect_timeout=3).close()
    except psycopg.OperationalError as error:
        return error
    return None


def add_postgres_argument(parser: argparse.ArgumentParser) -> None:
    """``--postgres``: the server, from ``IDEMSYNC_BENCH_PG``, else
    ``IDEMSYNC_TEST_PG`` (the tests'), else the local default."""
    parser.add_argument(
        "--postgres",
        default=os.environ.get("IDEMSYNC_BENCH_PG")
        or os.environ.get("IDEMSYNC_TEST_PG")
        or DEFAULT_PG,
        help="PostgreSQL server URL without a database name",
    )


def add_backends_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated: sqlite, postgres (default both)",
    )


def backends_of(text: str) -> list[str]:
    """The backends of a ``--backends`` value; empty when it names none or
    one unknown."""
    backends = [b.strip() for b in text.split(",") if b.strip()]
    return [] if set(backends) - set(BACKENDS) else backends
