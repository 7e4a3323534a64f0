"""Sightings: how many times a delivery was received, and when last.

A duplicate is answered with no write (specification §4), so its sighting
is counted in memory (``Sightings.record``) and written later, several at
once: ``Sightings.flush`` adds each key's count to its record's ``attempts``
and moves ``last_seen_at`` forward to its latest sighting, all in one
transaction. ``PeriodicFlush`` flushes every second in a thread of ``serve``
and a last time when it stops.

These are counters for auditors, not part of the exactly-once guarantee:
they lag by up to the flush interval, a crash loses the sightings of that
interval, and a record pruned meanwhile is simply not updated. While the store
is down the sightings are kept for the next flush, up to ``max_keys``
distinct keys; beyond that the least recently seen key is dropped and its
sightings are counted in ``dropped``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Engine, bindparam, case, or_, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from infrastructure.periodic import Periodic
from infrastructure.persistence.deliveries import DELIVERIES, moment

log = logging.getLogger("idemsync.sightings")

MAX_KEYS = 100_000

_c = DELIVERIES.c
_AT: BindParameter[Any] = bindparam("at")
COUNT_SIGHTINGS = (
    update(DELIVERIES)
    .where(_c.source == bindparam("s"), _c.idempotency_key == bindparam("k"))
    .values(
        attempts=_c.attempts + bindparam("n"),
        last_seen_at=case(
            (or_(_c.last_seen_at.is_(None), _c.last_seen_at < _AT), _AT),
            else_=_c.last_seen_at,
        ),
    )
)
"""Add ``n`` attempts; ``last_seen_at`` becomes ``at`` unless it is later
already (another process flushed a later sighting)."""


@dataclass
class Sighting:
    """The duplicates of one delivery seen since the last flush."""

    count: int
    last_seen_at: datetime

    def add(self, other: Sighting) -> None:
        self.count += other.count
        self.last_seen_at = max(self.last_seen_at, other.last_seen_at)


def _where(item: tuple[tuple[str, str], Sighting]) -> tuple[str, str]:
    return item[0]


class Sightings:
    """A thread-safe buffer of duplicate sightings per ``(source, key)``,
    flushed into the delivery log by ``flush``."""

    def __init__(self, engine: Engine, *, max_keys: int = MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.engine = engine
        self.max_keys = max_keys
        self.dropped = 0
        """Sightings lost because ``max_keys`` keys were pending already."""
        self._pending: OrderedDict[tuple[str, str], Sighting] = OrderedDict()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._failing = False

    def record(self, source: str, key: str, at: datetime) -> None:
        """Count one more receipt of ``(source, key)`` at ``at`` (aware)."""
        with self._lock:
            self._merge(((source, key), Sighting(1, at)))
            self._trim()

    @property
    def pending(self) -> int:
        """How many distinct keys wait for a flush."""
        with self._lock:
            return len(self._pending)

    def snapshot(self) -> dict[tuple[str, str], Sighting]:
        """A copy of what waits for a flush (for tests and diagnostics)."""
        with self._lock:
            return {
                k: Sighting(s.count, s.last_seen_at) for k, s in self._pending.items()
            }

    def flush(self) -> int:
        """Write every pending sighting in one transaction; the number of keys
        written (0 when there were none, or the store failed: then they are
        kept for the next flush and a warning is logged)."""
        with self._flushing:
            with self._lock:
                taken, self._pending = self._pending, OrderedDict()
            if not taken:
                return 0
            params = [
                {
                    "s": source,
                    "k": key,
                    "n": sighting.count,
                    "at": moment(self.engine, sighting.last_seen_at),
                }
                # One lock order for every process: no deadlock between two
                # flushing workers on PostgreSQL.
                for (source, key), sighting in sorted(taken.items(), key=_where)
            ]
            try:
                with self.engine.begin() as conn:
                    conn.execute(COUNT_SIGHTINGS, params)
            except SQLAlchemyError as error:
                self._put_back(taken)
                self._failed(error, len(taken))
                return 0
            if self._failing:
                self._failing = False
                log.info("sightings flushed again (%d delivery records)", len(taken))
            return len(taken)

    def _put_back(self, taken: OrderedDict[tuple[str, str], Sighting]) -> None:
        """Keep a failed flush's sightings, older than the ones recorded
        meanwhile."""
        with self._lock:
            recent, self._pending = self._pending, taken
            self._merge(*recent.items())
            self._trim()

    def _merge(self, *items: tuple[tuple[str, str], Sighting]) -> None:
        for where, sighting in items:
            known = self._pending.get(where)
            if known is None:
                self._pending[where] = sighting
            else:
                known.add(sighting)
                self._pending.move_to_end(where)

    def _trim(self) -> None:
        while len(self._pending) > self.max_keys:
            _, oldest = self._pending.popitem(last=False)
            self.dropped += oldest.count

    def _failed(self, error: SQLAlchemyError, keys: int) -> None:
        """Warn once per outage, naming the error but neither the URL nor the
        statement's parameters."""
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        cause = error.orig if isinstance(error, DBAPIError) else error
        reason = (str(cause).strip().splitlines() or [""])[0][:200]
        log.log(
            level,
            "could not write the sightings of %d delivery records (kept for the "
            "next flush; %d dropped so far): %s: %s",
            keys,
            self.dropped,
            type(cause).__name__,
            reason,
        )


class PeriodicFlush(Periodic):
    """Flushes ``sightings`` every ``interval_seconds``, and a last time at
    ``stop``."""

    what = "flushing sightings"
    at_start = False
    at_stop = True

    def __init__(self, sightings: Sightings, interval_seconds: float = 1.0) -> None:
        super().__init__("sightings", interval_seconds)
        self.sightings = sightings

    def run_once(self, stop: threading.Event) -> None:
        self.sightings.flush()
