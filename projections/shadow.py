"""Shadow tables of a projection, for a rebuild (specification §6).

A shadow is the projection's tables under the suffix ``__r<unix-ms>``, with a
shadow position row ``<name>__r<unix-ms>``. ``swap`` renames the live tables
away and the shadow tables in (restoring the live index names), inside the
caller's transaction. A rebuild that died (crash, kill) leaves its shadow
behind; ``drop_leftovers`` removes it. ``exclusive`` allows one rebuild per
projection at a time: a PostgreSQL advisory lock, or a lock file beside the
SQLite database.
"""

from __future__ import annotations

import fcntl
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, MetaData, func, inspect, select, text

from projections import positions
from projections.base import Projection, Tables
from projections.leadership import lock_key


class RebuildRunning(Exception):
    """Another rebuild of this projection is running (here or elsewhere)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a rebuild of {name!r} is already running")
        self.name = name


def new_suffix() -> str:
    """The name suffix of a new shadow: ``__r<unix-ms>``."""
    return f"__r{time.time_ns() // 1_000_000}"


def create_shadow(engine: Engine, shadow: Tables, position_name: str) -> None:
    """Create the shadow tables and the shadow position row (at 0)."""
    next(iter(shadow.values())).metadata.create_all(engine)
    with engine.begin() as conn:
        positions.lock(conn, position_name)


def swap(conn: Connection, live: Tables, shadow: Tables, suffix: str) -> None:
    """Rename live tables away and shadow tables in, drop the old ones, and
    give the new tables' indexes the live names (migrations refer to them)."""
    quote = conn.dialect.identifier_preparer.quote
    for table in live.values():
        old = quote(f"{table.name}__old{suffix}")
        conn.execute(text(f"ALTER TABLE {quote(table.name)} RENAME TO {old}"))
    for key, table in shadow.items():
        conn.execute(
            text(f"ALTER TABLE {quote(table.name)} RENAME TO {quote(live[key].name)}")
        )
    for table in live.values():
        conn.execute(text(f"DROP TABLE {quote(f'{table.name}__old{suffix}')}"))
    _restore_index_names(conn, live, shadow, suffix)


def _restore_index_names(
    conn: Connection, live: Tables, shadow: Tables, suffix: str
) -> None:
    """The swapped-in tables' indexes still carry the shadow suffix: give
    them the live names."""
    quote = conn.dialect.identifier_preparer.quote
    for key, table in live.items():
        if conn.dialect.name == "postgresql":
            # Also the primary key's index (and so its constraint): orders_pkey.
            for (index,) in conn.execute(
                text(
                    "SELECT indexname FROM pg_indexes WHERE tablename = :table "
                    "AND schemaname = current_schema()"
                ),
                {"table": table.name},
            ):
                if suffix in index:
                    renamed = quote(index.replace(suffix, ""))
                    conn.execute(
                        text(f"ALTER INDEX {quote(index)} RENAME TO {renamed}")
                    )
        else:  # SQLite cannot rename an index: build it again under its name.
            for index in shadow[key].indexes:
                conn.execute(text(f"DROP INDEX {quote(str(index.name))}"))
            for index in table.indexes:
                index.create(conn)


def drop_leftovers(engine: Engine, projection: Projection, name: str) -> None:
    """Drop the shadow and old tables and the shadow position rows that a
    rebuild of this projection left behind (this one's, or a crashed one's)."""
    bases = "|".join(re.escape(t.name) for t in projection.define(MetaData()).values())
    stale = re.compile(rf"^(?:{bases})(?:__old)?__r\d+$")
    shadow_position = re.compile(rf"^{re.escape(name)}__r\d+$")
    with engine.begin() as conn:
        quote = conn.dialect.identifier_preparer.quote
        for table in inspect(conn).get_table_names():
            if stale.match(table):
                conn.execute(text(f"DROP TABLE {quote(table)}"))
        for (row_name,) in conn.execute(select(positions.positions.c.name)):
            if shadow_position.match(row_name):
                positions.remove(conn, row_name)


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """One rebuild of ``name`` at a time, across processes: a session
    advisory lock on PostgreSQL, ``flock`` on a file beside SQLite's."""
    if engine.dialect.name == "postgresql":
        key = lock_key(f"rebuild.{name}")
        with engine.connect() as conn:
            taken = conn.execute(select(func.pg_try_advisory_lock(key))).scalar()
            conn.commit()
            if not taken:
                raise RebuildRunning(name)
            try:
                yield
            finally:
                if not conn.invalidated:
                    conn.execute(select(func.pg_advisory_unlock(key)))
                    conn.commit()
        return
    with Path(f"{engine.url.database}.rebuild-{name}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RebuildRunning(name) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
