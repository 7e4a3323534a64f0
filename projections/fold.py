"""Folding a batch of events into the rows it touches, in memory.

A projection's ``process_batch`` reads the rows its events touch once
(``Rows``: one ``SELECT`` of their keys), applies every event to them in
Python, in log order, and writes each changed row once: one statement
UPDATEs the rows that were stored, one INSERTs the new ones. The statements
are made once per table (``statements``).

The rows written are the rows that applying the events one at a time would
leave: each event is applied to the row as the previous events left it,
whether they were in this batch (in memory) or an earlier one (read back).
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    BindParameter,
    Column,
    Connection,
    Dialect,
    Select,
    Table,
    any_,
    bindparam,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY

CHUNK = 500
"""Keys per ``SELECT … IN (…)`` on SQLite: far below its bound-parameter
limit. PostgreSQL takes them all as one array (``= ANY(…)``)."""

Row = dict[str, Any]
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Statements:
    """A table's statements for one dialect.

    ``load`` is a SQLAlchemy ``SELECT`` (values come back as the column types
    say: SQLite's time text as ``datetime``). Writes are driver SQL, run once
    per batch whatever the number of rows:

    * SQLite: ``INSERT … VALUES (?, …)`` and ``UPDATE … SET c = ? … WHERE
      key = ?`` through the driver's ``executemany`` (in process: no round
      trips), with values passed through the columns' SQLAlchemy bind
      processors, so they are stored exactly as a SQLAlchemy statement would
      store them (times as its text);
    * PostgreSQL: ``COPY … FROM STDIN`` for the new rows, and one ``UPDATE …
      FROM json_populate_recordset(NULL::<table>, <the rows as JSON>)`` for
      the stored ones (psycopg dumps an array element by element in Python,
      ``json.dumps`` is C); the server types the values by the columns.
    """

    postgres: bool
    key: tuple[str, ...]
    columns: tuple[str, ...]
    load: Select[Any]
    chunk: int
    insert_sql: str
    update_sql: str
    update_order: tuple[int, ...]
    """SQLite: column indexes in the order of the UPDATE's parameters."""
    processors: tuple[Processor, ...]

    def key_of(self, row: Any) -> Any:
        """A row's key: its primary key value, or a tuple of them."""
        if len(self.key) == 1:
            return row[self.key[0]]
        return tuple(row[name] for name in self.key)

    def insert(self, conn: Connection, rows: Sequence[Row]) -> None:
        columns = self._columns(rows)
        if self.postgres:
            # psycopg's own connection, in this transaction.
            driver: Any = conn.connection.driver_connection
            with driver.cursor() as cursor, cursor.copy(self.insert_sql) as copy:
                for values in zip(*columns, strict=True):
                    copy.write_row(values)
            return
        conn.exec_driver_sql(self.insert_sql, list(zip(*columns, strict=True)))

    def update(self, conn: Connection, rows: Sequence[Row]) -> None:
        if len(self.columns) == len(self.key):
            return  # a row of its key only: nothing to change
        if self.postgres:
            conn.exec_driver_sql(self.update_sql, (json.dumps(rows, default=_json),))
            return
        columns = self._columns(rows)
        ordered = [columns[index] for index in self.update_order]
        conn.exec_driver_sql(self.update_sql, list(zip(*ordered, strict=True)))

    def _columns(self, rows: Sequence[Row]) -> list[Sequence[Any]]:
        """The rows' values, one sequence per column, bind-processed."""
        columns: list[Sequence[Any]]
        if len(self.columns) == 1:  # itemgetter of one name gives no tuple
            columns = [[row[self.columns[0]] for row in rows]]
        else:
            values = map(itemgetter(*self.columns), rows)
            columns = list(zip(*values, strict=True))
        for index, process in enumerate(self.processors):
            if process is not None:
                columns[index] = list(map(process, columns[index]))
        return columns


_statements: weakref.WeakKeyDictionary[Table, dict[str, Statements]] = (
    weakref.WeakKeyDictionary()
)


def statements(table: Table, dialect: Dialect) -> Statements:
    """The statements of ``table`` for ``dialect`` (made on first use)."""
    by_dialect = _statements.setdefault(table, {})
    found = by_dialect.get(dialect.name)
    if found is None:
        found = by_dialect[dialect.name] = _make(table, dialect)
    return found


def _make(table: Table, dialect: Dialect) -> Statements:
    postgres = dialect.name == "postgresql"
    quote = dialect.identifier_preparer.quote
    name = dialect.identifier_preparer.format_table(table)
    key_columns: list[Column[Any]] = list(table.primary_key.columns)
    columns = tuple(str(column.name) for column in table.columns)
    key = tuple(str(column.name) for column in key_columns)
    rest = tuple(column for column in columns if column not in key)
    listed = ", ".join(quote(column) for column in columns)
    keys: BindParameter[Any]
    if postgres and len(key_columns) == 1:
        keys = bindparam("keys", type_=ARRAY(key_columns[0].type))
        wanted = key_columns[0] == any_(keys)
    else:
        keys = bindparam("keys", expanding=True)
        wanted = (
            key_columns[0].in_(keys)
            if len(key_columns) == 1
            else tuple_(*key_columns).in_(keys)
        )
    if postgres:
        insert_sql = f"COPY {name} ({listed}) FROM STDIN"
        update_sql = (
            f"UPDATE {name} SET "
            + ", ".join(f"{quote(c)} = v.{quote(c)}" for c in rest)
            + f" FROM json_populate_recordset(NULL::{name}, %s) AS v WHERE "
            + " AND ".join(f"{name}.{quote(k)} = v.{quote(k)}" for k in key)
        )
        update_names = columns
    else:
        marks = ", ".join("?" for _ in columns)
        insert_sql = f"INSERT INTO {name} ({listed}) VALUES ({marks})"
        update_sql = (
            f"UPDATE {name} SET "
            + ", ".join(f"{quote(c)} = ?" for c in rest)
            + " WHERE "
            + " AND ".join(f"{quote(k)} = ?" for k in key)
        )
        update_names = rest + key
    return Statements(
        postgres=postgres,
        key=key,
        columns=columns,
        load=select(table).where(wanted),
        chunk=10_000 if postgres else CHUNK,
        insert_sql=insert_sql,
        update_sql=update_sql,
        update_order=tuple(columns.index(column) for column in update_names),
        processors=tuple(
            column.type.dialect_impl(dialect).bind_processor(dialect)
            for column in table.columns
        ),
    )


class Rows:
    """The rows of ``table`` that a batch touches, by key: read once, changed
    in memory (``get``, then ``put`` a new dict), written once (``write``)."""

    def __init__(self, conn: Connection, table: Table, keys: Iterable[Any]) -> None:
        self.conn = conn
        self.table = table
        self.statements = statements(table, conn.dialect)
        self._rows: dict[Any, Row] = {}
        self._changed: dict[Any, None] = {}  # ordered: rows are written in order
        wanted = list(dict.fromkeys(keys))
        size = self.statements.chunk
        for start in range(0, len(wanted), size):
            chunk = {"keys": wanted[start : start + size]}
            result = conn.execute(self.statements.load, chunk)
            names = tuple(result.keys())
            for values in result:
                row = dict(zip(names, values, strict=True))
                self._rows[self.statements.key_of(row)] = row
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
        INSERT the others (one statement each)."""
        updates: list[Row] = []
        inserts: list[Row] = []
        for key in self._changed:
            (updates if key in self._stored else inserts).append(self._rows[key])
        if updates:
            self.statements.update(self.conn, updates)
        if inserts:
            self.statements.insert(self.conn, inserts)
        self._stored.update(self._changed)
        self._changed.clear()


def _json(value: Any) -> Any:
    """Times as ISO 8601 with their offset, which PostgreSQL reads back as
    the same instant; anything else JSON cannot take is a mistake."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a projection row: {value!r}")


def utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC time: SQLite gives back the naive UTC
    time it was given (its ``DateTime`` drops the zone)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
