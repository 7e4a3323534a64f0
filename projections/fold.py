"""Folding a batch of events into the rows it touches, in memory.

A projection's ``process_batch`` reads the rows its events touch once
(``Rows``: one ``SELECT … WHERE key IN (…)`` per ``CHUNK`` keys), applies every
event to them in Python, in log order, and writes each changed row once: one
``executemany`` UPDATE of the rows that were stored, one ``executemany``
INSERT of the new ones. The statements are built once per table
(``statements``), so SQLAlchemy compiles them once and only binds values
after that.

The rows written are the rows that applying the events one at a time would
leave: each event is applied to the row as the previous events left it,
whether they were in this batch (in memory) or an earlier one (read back).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Column,
    Connection,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    insert,
    select,
    tuple_,
    update,
)

CHUNK = 500
"""Keys per ``SELECT … IN``: far below SQLite's bound-parameter limit."""

Row = dict[str, Any]


@dataclass(frozen=True)
class Statements:
    """A table's prebuilt statements: load by keys, update by key, insert."""

    key: tuple[str, ...]
    load: Select[Any]
    update: Update
    insert: Insert

    def key_of(self, row: Any) -> Any:
        """A row's key: its primary key value, or a tuple of them."""
        if len(self.key) == 1:
            return row[self.key[0]]
        return tuple(row[name] for name in self.key)


_statements: weakref.WeakKeyDictionary[Table, Statements] = weakref.WeakKeyDictionary()


def statements(table: Table) -> Statements:
    """The prebuilt statements of ``table`` (made on first use)."""
    found = _statements.get(table)
    if found is None:
        key: list[Column[Any]] = list(table.primary_key.columns)
        keys: BindParameter[Any] = bindparam("keys", expanding=True)
        wanted = key[0].in_(keys) if len(key) == 1 else tuple_(*key).in_(keys)
        found = Statements(
            key=tuple(column.name for column in key),
            load=select(table).where(wanted),
            # SET takes the columns named in the parameters (all but the key).
            update=update(table).where(
                *(column == bindparam(f"key_{column.name}") for column in key)
            ),
            insert=insert(table),
        )
        _statements[table] = found
    return found


class Rows:
    """The rows of ``table`` that a batch touches, by key: read once, changed
    in memory (``get``, then ``put`` a new dict), written once (``write``)."""

    def __init__(self, conn: Connection, table: Table, keys: Iterable[Any]) -> None:
        self.conn = conn
        self.table = table
        self.statements = statements(table)
        self._rows: dict[Any, Row] = {}
        self._changed: dict[Any, None] = {}  # ordered: rows are written in order
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), CHUNK):
            chunk = {"keys": wanted[start : start + CHUNK]}
            for row in conn.execute(self.statements.load, chunk).mappings():
                self._rows[self.statements.key_of(row)] = dict(row)
        self._stored = set(self._rows)

    def get(self, key: Any) -> Row | None:
        """The row as the events so far left it; None when there is none.
        Do not change it in place: ``put`` a new one."""
        return self._rows.get(key)

    def put(self, key: Any, row: Row) -> None:
        """``row`` (every column) is now the row of ``key``."""
        self._rows[key] = row
        self._changed[key] = None

    def write(self) -> None:
        """Write every changed row once: UPDATE those that were stored,
        INSERT the others (each an ``executemany``)."""
        names = self.statements.key
        updates, inserts = [], []
        for key in self._changed:
            row = self._rows[key]
            if key in self._stored:
                values = {k: v for k, v in row.items() if k not in names}
                updates.append(values | {f"key_{name}": row[name] for name in names})
            else:
                inserts.append(row)
        if updates:
            self.conn.execute(self.statements.update, updates)
        if inserts:
            self.conn.execute(self.statements.insert, inserts)
        self._stored.update(self._changed)
        self._changed.clear()


def utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time: SQLite gives back the naive UTC
    time it was given (its ``DateTime`` drops the zone)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
