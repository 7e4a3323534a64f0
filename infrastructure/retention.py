"""Retention (specification §6): delivery records are kept ``retention_days``.

``prune`` deletes the records (raw payloads and headers included) of each
source that were received before its cutoff; the events are never touched.
A retry that arrives after its record was pruned collides with its receipt in
the event log and is answered ``duplicate`` with the first answer (and were
the receipt gone too, its events would be ``stale`` by position): idempotency
holds in layers. Records of a source no longer configured are kept the
default ``retention_days``.

Deletes go in batches, each its own short transaction, so that a large prune
never holds SQLite's write lock (or many row locks) for long while partners
are delivering. ``PeriodicPrune`` runs ``prune`` in a thread of ``serve``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Engine, delete, func, select

from infrastructure.periodic import Periodic
from infrastructure.persistence.deliveries import DELIVERIES, moment
from infrastructure.settings import SourceSettings

log = logging.getLogger("idemsync.retention")

DEFAULT_RETENTION_DAYS = SourceSettings.retention_days
BATCH = 1000


@dataclass(frozen=True)
class Pruned:
    """One source's prune: the cutoff and how many records went (or, in a
    dry run, would go)."""

    source: str
    retention_days: int
    cutoff: datetime
    count: int


def prune(
    engine: Engine,
    sources: Mapping[str, SourceSettings],
    *,
    now: datetime | None = None,
    dry_run: bool = False,
) -> list[Pruned]:
    """Delete every delivery record older than its source's retention; one
    ``Pruned`` per source that has records, configured or not."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        stored = conn.execute(select(DELIVERIES.c.source).distinct()).scalars().all()
    pruned = []
    for name in sorted({*sources, *stored}):
        source = sources.get(name)
        days = source.retention_days if source else DEFAULT_RETENTION_DAYS
        cutoff = now - timedelta(days=days)
        count = (_count if dry_run else _delete)(engine, name, cutoff)
        pruned.append(Pruned(name, days, cutoff, count))
    return pruned


def _older(
    engine: Engine, source: str, cutoff: datetime
) -> tuple[ColumnElement[bool], ...]:
    c = DELIVERIES.c
    return (c.source == source, c.received_at < moment(engine, cutoff))


def _count(engine: Engine, source: str, cutoff: datetime) -> int:
    query = select(func.count()).select_from(DELIVERIES)
    with engine.connect() as conn:
        return int(conn.execute(query.where(*_older(engine, source, cutoff))).one()[0])


def _delete(engine: Engine, source: str, cutoff: datetime) -> int:
    keys = select(DELIVERIES.c.idempotency_key).where(*_older(engine, source, cutoff))
    total = 0
    while True:
        with engine.begin() as conn:
            batch = conn.execute(keys.limit(BATCH)).scalars().all()
            if batch:
                conn.execute(
                    delete(DELIVERIES).where(
                        DELIVERIES.c.source == source,
                        DELIVERIES.c.idempotency_key.in_(batch),
                    )
                )
        total += len(batch)
        if len(batch) < BATCH:
            return total


class PeriodicPrune(Periodic):
    """Prunes the delivery log at start, then every ``interval_seconds``."""

    what = "pruning delivery records"

    def __init__(
        self,
        engine: Engine,
        sources: Mapping[str, SourceSettings],
        interval_seconds: float = 3600.0,
    ) -> None:
        super().__init__("prune", interval_seconds)
        self.engine = engine
        self.sources = sources

    def run_once(self, stop: threading.Event) -> None:
        for result in prune(self.engine, self.sources):
            if result.count:
                log.info(
                    "pruned %d delivery records of source %s (older than %s)",
                    result.count,
                    result.source,
                    result.cutoff.isoformat(),
                )
