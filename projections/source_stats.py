"""``source_stats``: per source and outcome, how many deliveries and when.

Built from the receipts in the log, so it survives the pruning of delivery
records. Duplicates are not deliveries (they write nothing): they show in the
metrics and in each record's ``attempts``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    MetaData,
    Table,
    Text,
    case,
)

from domain.receipt import Receipt
from projections.base import Projection, Tables, insert


class SourceStatsProjection(Projection):
    """Counts of first outcomes per source, with first and last receive time."""

    name = "source_stats"
    event_classes = (Receipt.Issued,)  # type: ignore[attr-defined]  # made by @event

    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        stats = Table(
            f"source_stats{suffix}",
            metadata,
            Column("source", Text, primary_key=True),
            Column("outcome", Text, primary_key=True),
            Column("count", BigInteger, nullable=False),
            Column("first_seen", DateTime(timezone=True), nullable=False),
            Column("last_seen", DateTime(timezone=True), nullable=False),
        )
        return {"source_stats": stats}

    def process(self, conn: Connection, tables: Tables, event: Any) -> None:
        stats = tables["source_stats"]
        seen = datetime.fromisoformat(event.received_at).astimezone(UTC)
        statement = insert(conn, stats).values(
            source=event.source,
            outcome=event.outcome,
            count=1,
            first_seen=seen,
            last_seen=seen,
        )
        excluded = statement.excluded
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["source", "outcome"],
                set_={
                    "count": stats.c.count + 1,
                    "first_seen": case(
                        (excluded.first_seen < stats.c.first_seen, excluded.first_seen),
                        else_=stats.c.first_seen,
                    ),
                    "last_seen": case(
                        (excluded.last_seen > stats.c.last_seen, excluded.last_seen),
                        else_=stats.c.last_seen,
                    ),
                },
            )
        )
