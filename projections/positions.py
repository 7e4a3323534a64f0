"""``projection_positions``: how far each projection has read the log.

A batch locks its projection's row first (an UPDATE: a row lock on
PostgreSQL, the write lock on SQLite), reads the position, applies the events
after it and moves it, all in one transaction: two runners can never apply
the same event, and a crash loses or repeats nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    select,
    update,
)

from infrastructure.persistence.database import insert

positions = Table(
    "projection_positions",
    MetaData(),
    Column("name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("state", Text, nullable=False),
    Column("error", Text),
    Column("failures", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True)),
)


@dataclass(frozen=True)
class Position:
    """A projection's row: where it is and how it is doing."""

    name: str
    position: int
    state: str
    error: str | None
    failures: int


_name: BindParameter[str] = bindparam("position_name")
_LOCK = (
    update(positions)
    .where(positions.c.name == _name)
    .values(name=positions.c.name)
    .returning(positions.c.position)
)
_ADVANCE = (
    update(positions)
    .where(positions.c.name == _name)
    .values(
        position=bindparam("new_position"),
        state="running",
        error=None,
        failures=0,
        updated_at=bindparam("now"),
    )
)
_READ = select(positions).where(positions.c.name == _name)
"""Statements made once (``lock`` and ``advance`` run in every batch)."""


def lock(conn: Connection, name: str) -> int:
    """Take the projection's row lock for this transaction (an UPDATE,
    making the row at 0 first when it is new); its position."""
    value = conn.execute(_LOCK, {"position_name": name}).scalar()
    if value is None:
        conn.execute(
            insert(conn, positions)
            .values(name=name, position=0, state="running", failures=0)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = conn.execute(_LOCK, {"position_name": name}).scalar_one()
    return int(value)


def advance(conn: Connection, name: str, position: int) -> None:
    conn.execute(
        _ADVANCE,
        {"position_name": name, "new_position": position, "now": datetime.now(UTC)},
    )


def set_state(
    conn: Connection, name: str, state: str, error: str | None, failures: int
) -> None:
    """Record how the projection is doing (its row is made if it is new: a
    projection failing on its very first batch must still show it)."""
    conn.execute(
        insert(conn, positions)
        .values(name=name, position=0, state=state, failures=failures)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    conn.execute(
        update(positions)
        .where(positions.c.name == name)
        .values(
            state=state, error=error, failures=failures, updated_at=datetime.now(UTC)
        )
    )


def read(conn: Connection, name: str) -> Position | None:
    row = conn.execute(_READ, {"position_name": name}).first()
    if row is None:
        return None
    return Position(row.name, int(row.position), row.state, row.error, row.failures)


def remove(conn: Connection, name: str) -> None:
    conn.execute(positions.delete().where(positions.c.name == name))
