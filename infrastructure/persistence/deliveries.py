"""The delivery log's table as SQLAlchemy Core sees it, for the code that
reads or prunes it outside the recorders (replay, retention)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, column, table

DELIVERIES = table(
    "deliveries",
    *(
        column(name)
        for name in (
            "source",
            "idempotency_key",
            "received_at",
            "outcome",
            "reason",
            "payload",
            "headers",
            "resolution",
            "resolution_reason",
            "attempts",
            "last_seen_at",
        )
    ),
)
"""The columns replay, retention and sightings use, untyped: times come back
as SQLite's ISO 8601 text or PostgreSQL's ``timestamptz``, and are bound the
same way (see ``moment``)."""


def moment(engine: Engine, at: datetime) -> datetime | str:
    """``at`` as the delivery log stores it: ISO 8601 text in UTC on SQLite
    (which compares as text), a ``timestamptz`` on PostgreSQL."""
    utc = at.astimezone(UTC)
    if engine.dialect.name == "postgresql":
        return utc
    return utc.isoformat(timespec="microseconds")


def parse_moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
