"""Row-for-row comparison of a live projection table with its rebuilt shadow
(``rebuild(..., verify=True)``): how many primary keys differ, with a few
examples of both sides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select
from sqlalchemy import union as sql_union

EXAMPLES = 5


@dataclass(frozen=True)
class TableDiff:
    """Rows of one table whose primary key is on one side only, or whose
    values differ; ``examples`` holds a few as (key, live, rebuilt)."""

    table: str
    differing: int
    examples: tuple[dict[str, Any], ...] = ()


def compare(conn: Connection, live: Table, rebuilt: Table) -> TableDiff:
    """Rows in one table and not the other (SQL EXCEPT both ways), counted
    once per primary key."""
    key = [str(column.name) for column in live.primary_key.columns]
    old = select(*live.columns)
    new = select(*(rebuilt.c[column.name] for column in live.columns))
    only_old, only_new = old.except_(new).subquery(), new.except_(old).subquery()
    keys = sql_union(
        select(*(only_old.c[k] for k in key)), select(*(only_new.c[k] for k in key))
    ).subquery()
    differing = conn.execute(select(func.count()).select_from(keys)).scalar_one()
    examples = []
    for row in conn.execute(select(keys).order_by(*keys.c).limit(EXAMPLES)):
        where = dict(zip(key, row, strict=True))
        examples.append(
            {
                "key": _plain(where),
                "live": _row(conn, live, where),
                "rebuilt": _row(conn, rebuilt, where),
            }
        )
    return TableDiff(str(live.name), int(differing), tuple(examples))


def _row(
    conn: Connection, table: Table, where: dict[str, Any]
) -> dict[str, Any] | None:
    found = conn.execute(
        select(table).where(*(table.c[k] == v for k, v in where.items()))
    ).first()
    return None if found is None else _plain(dict(found._mapping))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly values (times as ISO 8601)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
