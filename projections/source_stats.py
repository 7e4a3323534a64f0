"""``source_stats``: per source and outcome, how many deliveries and when.

Built from the receipts in the log, so it survives the pruning of delivery
records. Duplicates are not deliveries (they write nothing): they show in the
metrics and in each record's ``attempts``.
"""

from __future__ import annotations

from collections.abc import Sequence
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
)

from domain.receipt import Receipt
from projections.base import Projection, Tables
from projections.fold import Rows, utc


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

    def process_batch(
        self, conn: Connection, tables: Tables, events: Sequence[Any]
    ) -> None:
        stats = Rows(
            conn,
            tables["source_stats"],
            {(event.source, event.outcome) for event in events},
        )
        for event in events:
            key = (event.source, event.outcome)
            seen = datetime.fromisoformat(event.received_at).astimezone(UTC)
            row = stats.get(key)
            if row is None:
                row = {"source": event.source, "outcome": event.outcome, "count": 1}
                row |= {"first_seen": seen, "last_seen": seen}
            else:
                row = {
                    **row,
                    "count": row["count"] + 1,
                    "first_seen": min(utc(row["first_seen"]), seen),
                    "last_seen": max(utc(row["last_seen"]), seen),
                }
            stats.put(key, row)
        stats.write()
