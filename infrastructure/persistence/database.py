"""The configured store: its URL, eventsourcing's environment, and Alembic."""

from __future__ import annotations

import importlib.resources
import os
import sqlite3
from collections.abc import Iterable
from contextlib import closing, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Table, create_engine, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from infrastructure.persistence.rows import KNOWN_NAMESPACES, PINNED_NAMESPACES
from infrastructure.settings import Settings

CUSTOM_PLANS = "-c plan_cache_mode=force_custom_plan"
"""Session option for every idemsync connection: psycopg prepares a statement
on its fifth use, and PostgreSQL may then keep a generic plan made while the
table was nearly empty (a sequential scan) for the life of the connection,
until statistics change. Without autoanalyze (autovacuum off, or a fast
growing table) that plan stays: finding one delivery took 1-2 ms after a few
thousand deliveries instead of 0.05 ms. A custom plan is made on each
execution, for the table as it is: about 0.08 ms of database CPU per query
here, the price of never keeping a plan the data has outgrown."""

MIGRATIONS = "infrastructure.migrations"
"""The Alembic scripts: ``migrations/`` of a checkout, shipped in the wheel
under this name (pyproject.toml's ``package-dir``)."""


UNREACHABLE = "store unreachable"
NOT_AT_HEAD = "schema not at head revision: run idemsync db upgrade"


def insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ``on_conflict_do_update`` on both backends."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class NotReady(Exception):
    """The store cannot be reached or is not migrated to the head revision.

    The message is for the operator (command line, server log): it names the
    store and the driver's error. ``reason`` (``UNREACHABLE`` or
    ``NOT_AT_HEAD``) is what an open endpoint may tell anyone: nothing of
    the store's URL, host, path or driver."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Database:
    """One database, named by ``IDEMSYNC_DATABASE_URL``: ``sqlite:///path`` or
    ``postgresql://user:password@host:port/dbname``."""

    def __init__(
        self, url: str, *, lock_timeout_seconds: float = 5.0, pool_size: int = 10
    ) -> None:
        self.url = url
        self.parts = urlsplit(url)
        if self.parts.scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"unsupported database URL scheme {self.parts.scheme!r}")
        self.lock_timeout_seconds = lock_timeout_seconds
        self.pool_size = pool_size
        self._engine: Engine | None = None

    @staticmethod
    def of(settings: Settings) -> Database:
        """The database of ``settings`` (URL, lock timeout, pool size)."""
        return Database(
            settings.database_url,
            lock_timeout_seconds=settings.database.lock_timeout_seconds,
            pool_size=settings.database.pool_size,
        )

    @property
    def is_postgres(self) -> bool:
        return self.parts.scheme != "sqlite"

    @property
    def sqlite_path(self) -> Path:
        """``sqlite:///var/x.db`` is relative to the working directory;
        ``sqlite:////tmp/x.db`` is absolute."""
        return Path(unquote(self.parts.path[1:]))

    def describe(self) -> str:
        """The URL without its password, for messages and logs."""
        if not self.is_postgres:
            return self.url
        host = f"{self.parts.hostname}:{self.parts.port or 5432}"
        return f"postgresql://{self.parts.username or ''}@{host}{self.parts.path}"

    def eventsourcing_env(self) -> dict[str, str]:
        """Environment of the ``SyncService``; Alembic owns the tables."""
        lock_timeout = str(max(1, round(self.lock_timeout_seconds)))
        if not self.is_postgres:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            return {
                "PERSISTENCE_MODULE": "infrastructure.persistence.sqlite:"
                "IdemsyncSQLiteFactory",
                "SQLITE_DBNAME": str(self.sqlite_path),
                "SQLITE_LOCK_TIMEOUT": lock_timeout,
                "CREATE_TABLE": "n",
            }
        return {
            "PERSISTENCE_MODULE": "infrastructure.persistence.postgres:"
            "IdemsyncPostgresFactory",
            "POSTGRES_DBNAME": unquote(self.parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": self.parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(self.parts.port or 5432),
            "POSTGRES_USER": unquote(self.parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(self.parts.password or ""),
            "POSTGRES_POOL_SIZE": str(self.pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.pool_size),
            "POSTGRES_CONNECT_TIMEOUT": lock_timeout,
            "POSTGRES_LOCK_TIMEOUT": lock_timeout,
            "POSTGRES_PRE_PING": "y",
            "CREATE_TABLE": "n",
        }

    def sqlalchemy_url(self) -> str:
        if self.is_postgres:
            return "postgresql+psycopg://" + self.url.split("://", 1)[1]
        return self.url

    def alembic_config(self) -> Config:
        """Alembic's configuration, built here rather than read from
        ``alembic.ini`` (which a checkout keeps for running ``alembic`` by
        hand), so that an installed idemsync migrates from any directory."""
        config = Config()
        scripts = importlib.resources.files(MIGRATIONS)
        config.set_main_option("script_location", str(scripts))
        config.attributes["database_url"] = self.url
        return config

    def upgrade(self) -> None:
        """Migrate to the head revision (``idemsync db upgrade``). A SQLite
        file made here is ``0600`` (SQLite gives its ``-wal`` and ``-shm``
        the same mode): it holds every payload, for its owner alone."""
        if not self.is_postgres:
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            with suppress(FileExistsError):
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
                os.close(os.open(self.sqlite_path, flags, 0o600))
        command.upgrade(self.alembic_config(), "head")
        if not self.is_postgres:
            # WAL is a property of the file: set it once here, so that opening
            # a connection never needs the write lock to switch modes.
            with closing(sqlite3.connect(self.sqlite_path)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        """The database's revision; raises ``NotReady`` when unreachable."""
        if not self.is_postgres and not self.sqlite_path.exists():
            return None
        try:
            with self.engine().connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                return conn.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
        except Exception as error:
            raise NotReady(
                f"{self.describe()} is unreachable: {error}", UNREACHABLE
            ) from error

    def check_ready(self) -> None:
        """Raise ``NotReady`` unless the store answers and is at the head."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            raise NotReady(
                f"{self.describe()} is at revision {current or 'none'}, "
                f"not {head}: run `idemsync db upgrade`",
                NOT_AT_HEAD,
            )

    def pinned_namespaces(self) -> dict[str, str]:
        """The store's namespace pins by source (``SourceSettings.namespace_of``)."""
        with self.engine().connect() as conn:
            return {
                source: namespace
                for source, namespace in conn.execute(text(PINNED_NAMESPACES))
            }

    def remember_namespaces(self, names: Iterable[str]) -> None:
        """Add ``names`` to the store's list of namespaces (``namespaces``:
        where ``AuditTrail`` looks for an object asked for by its id alone)."""
        wanted = set(names)
        with self.engine().begin() as conn:
            known = {name for (name,) in conn.execute(text(KNOWN_NAMESPACES))}
            for name in sorted(wanted - known):
                conn.execute(
                    text(
                        "INSERT INTO namespaces (name) VALUES (:name) "
                        "ON CONFLICT (name) DO NOTHING"
                    ),
                    {"name": name},
                )

    def engine(self) -> Engine:
        if self._engine is None:
            connect_args: dict[str, Any] = (
                {"connect_timeout": 3, "options": CUSTOM_PLANS}
                if self.is_postgres
                else {}
            )
            self._engine = create_engine(
                self.sqlalchemy_url(), pool_pre_ping=True, connect_args=connect_args
            )
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
