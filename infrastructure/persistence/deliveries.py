"""The delivery log's table as SQLAlchemy Core sees it, for the code that
reads or prunes it outside the recorders (replay, retention, metrics)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, column, func, select, table

from infrastructure.persistence.ledger import parse_time

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
            "aggregate_type",
            "aggregate_id",
            "payload",
            "headers",
            "resolution",
            "resolution_reason",
            "attempts",
            "last_seen_at",
            "payload_sha256",
            "headers_sha256",
            "redacted_at",
        )
    ),
)
"""The columns replay, retention, sightings and redaction use, untyped: times come back
as SQLite's ISO 8601 text or PostgreSQL's ``timestamptz``, and are bound the
same way (see ``moment``)."""


def moment(engine: Engine, at: datetime) -> datetime | str:
    """``at`` as the delivery log stores it: ISO 8601 text in UTC on SQLite
    (which compares as text), a ``timestamptz`` on PostgreSQL."""
    utc = at.astimezone(UTC)
    if engine.dialect.name == "postgresql":
        return utc
    return utc.isoformat(timespec="microseconds")


def parked_backlog(engine: Engine) -> dict[str, tuple[int, datetime]]:
    """Per source: deliveries answered ``parked`` that nothing has resolved
    yet, and when the oldest of them was received."""
    table = DELIVERIES
    query = (
        select(table.c.source, func.count(), func.min(table.c.received_at))
        .where(table.c.outcome == "parked", table.c.resolution.is_(None))
        .group_by(table.c.source)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return {source: (count, parse_time(oldest)) for source, count, oldest in rows}
