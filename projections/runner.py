"""The projection runner: keeps every read model up to date, on both backends.

eventsourcing's ``ProjectionRunner`` needs LISTEN/NOTIFY (not on SQLite) and
stops for good on the first error; this one polls on SQLite, wakes on NOTIFY
on PostgreSQL, retries a failing projection with backoff and shows it as
``retrying``, then ``failed``, in ``projection_positions`` (and
``idemsync projections status``) instead of stopping silently.

No gaps: on PostgreSQL every writer holds eventsourcing's table lock until it
commits, so notification ids become visible in order; a batch reads only up
to the head it saw before it started, all of which is committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, MetaData

from domain.application import SyncService
from domain.preload import to_events
from projections import positions
from projections.base import Projection, Tables
from projections.leadership import Leadership, Waiter

log = logging.getLogger("idemsync.projections")

QUICK_RETRIES = 5
"""Failures in a row before a projection shows as ``failed`` (it is still
retried, every ``MAX_BACKOFF`` seconds, so it recovers once fixed)."""
MAX_BACKOFF = 30.0
LOCK_BUDGET_SECONDS = 0.1
"""How long one live batch should hold its lock. On SQLite that lock is the
database's write lock, so incoming deliveries wait at most about this long:
batches grow (up to ``batch_size``) while they are faster and shrink when
slower."""
MIN_BATCH = 10
READ_WINDOW = 10_000
"""A batch of ``limit`` events reads at most ``max(READ_WINDOW, 8 * limit)``
notification ids, and about as many as the last batch needed for that many
of its events (``ProjectionRunner._window``). PostgreSQL without statistics
on the event table (autovacuum off, or just after a bulk load) reads a
projection's topics by sorting every matching row of the ids it is given,
on disk once they pass ``work_mem``: unbounded, a rebuild would take time
quadratic in the log; bounded loosely, each batch would spill its sort."""


@dataclass(frozen=True)
class Status:
    """One line of ``idemsync projections status``."""

    name: str
    position: int
    head: int
    state: str
    error: str | None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


class ProjectionRunner:
    """Applies new events to projections, one transaction per batch."""

    def __init__(
        self,
        service: SyncService,
        engine: Engine,
        projections: Mapping[str, Projection],
        *,
        batch_size: int = 500,
        poll_seconds: float = 0.5,
    ) -> None:
        self.service = service
        self.engine = engine
        self.projections = dict(projections)
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.tables = {
            name: projection.define(MetaData())
            for name, projection in self.projections.items()
        }
        self._failures: dict[str, int] = {}
        self._limits: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._positions: dict[str, int] = {}  # where this runner's last batch left each
        self._heads: dict[str, int] = {}  # the head each position's last batch saw
        self._spreads: dict[str, float] = {}  # ids per event in its last batch

    def head(self) -> int:
        return int(self.service.recorder.max_notification_id() or 0)

    def step(
        self,
        name: str,
        *,
        tables: Tables | None = None,
        position_name: str | None = None,
        batch_size: int | None = None,
        up_to: int | None = None,
    ) -> tuple[int, bool]:
        """Apply one batch; returns (events applied, whether more are waiting).

        ``tables`` and ``position_name`` point a rebuild at shadow tables;
        ``up_to`` stops at that notification id instead of the head.

        While it is catching up, a runner does not read again what it already
        knows: the position its last batch left (the lock checks it: a
        position moved meanwhile by another runner or a rebuild is read
        afresh, as it is whenever there seems to be nothing to do) and the
        head its last batch saw (every id up to it is committed).
        """
        projection = self.projections[name]
        tables = tables if tables is not None else self.tables[name]
        position_name = position_name or name
        limit = batch_size or self._limits.get(position_name, MIN_BATCH)
        with self.engine.connect() as conn:  # one connection for the batch
            position, head = self._bounds(conn, position_name, up_to)
            if position >= head:
                return 0, False
            # Read and decode before taking the lock: on SQLite the lock is the
            # database's write lock, so it is held only while rows are written.
            stop = min(head, position + self._window(position_name, limit))
            notifications = self.service.recorder.select_notifications(
                start=position + 1, limit=limit, stop=stop, topics=projection.topics
            )
            events = to_events(self.service.mapper, notifications)
            reached = notifications[-1].id if len(notifications) == limit else stop
            started = time.monotonic()
            with conn.begin():
                if positions.lock(conn, position_name) != position:
                    return 0, True  # another runner moved it meanwhile: read again
                projection.process_batch(conn, tables, events)
                positions.advance(conn, position_name, reached)
            self._positions[position_name] = reached
            self._spreads[position_name] = (reached - position) / max(len(events), 1)
        if batch_size is None:
            self._adapt(position_name, limit, time.monotonic() - started)
        if up_to is not None:
            return len(events), reached < up_to
        return len(events), self._head(position_name, reached) > reached

    def _bounds(
        self, conn: Connection, position_name: str, up_to: int | None
    ) -> tuple[int, int]:
        """The position and the head to read up to."""
        known = self._positions.pop(position_name, None)  # back once committed
        position = self._stored(conn, position_name) if known is None else known
        head = up_to if up_to is not None else self._head(position_name, position)
        if known is not None and position >= head:
            # Done, as far as this runner knows: check the stored position.
            position = self._stored(conn, position_name)
            head = up_to if up_to is not None else self._head(position_name, position)
        return position, head

    @staticmethod
    def _stored(conn: Connection, position_name: str) -> int:
        """The stored position, read outside any transaction."""
        row = positions.read(conn, position_name)
        conn.rollback()  # no transaction open while the events are read
        return row.position if row is not None else 0

    def _window(self, position_name: str, limit: int) -> int:
        """How many notification ids a batch of ``limit`` events reads at
        most: a quarter more than the last batch needed per event (two per
        event at first), at least ``limit``, at most ``max(READ_WINDOW, 8 *
        limit)``."""
        wanted = limit * self._spreads.get(position_name, 2.0) * 1.25
        return int(min(max(wanted, limit), max(READ_WINDOW, 8 * limit)))

    def _head(self, position_name: str, position: int) -> int:
        """The head the last batch saw while it is ahead of ``position``,
        else the current head."""
        seen = self._heads.get(position_name, 0)
        if seen > position:
            return seen
        head = self._heads[position_name] = self.head()
        return head

    def _adapt(self, position_name: str, limit: int, held: float) -> None:
        if held > LOCK_BUDGET_SECONDS:
            limit = max(MIN_BATCH, limit // 2)
        elif held < LOCK_BUDGET_SECONDS / 2:
            limit = min(self.batch_size, limit * 2)
        self._limits[position_name] = limit

    def catch_up(self, name: str) -> int:
        """Apply everything up to the current head; returns events applied."""
        applied, more = self.step(name)
        total = applied
        while more:
            applied, more = self.step(name)
            total += applied
        return total

    def run(self, stop: threading.Event, leadership: Leadership | None = None) -> None:
        """Until ``stop``: apply new events to the projections this process
        leads (PostgreSQL advisory locks: one runner per projection across
        hosts), waking on NOTIFY or every ``poll_seconds``."""
        leadership = leadership or Leadership.for_engine(self.engine)
        waiter = Waiter.for_engine(self.engine, self.poll_seconds)
        try:
            while not stop.is_set():
                busy = False
                for name in self.projections:
                    if stop.is_set():
                        break
                    if leadership.holds(name) and time.monotonic() >= (
                        self._not_before.get(name, 0.0)
                    ):
                        busy |= self._step_safely(name)
                if not busy:
                    waiter.wait()
        finally:
            waiter.close()
            leadership.close()

    def _step_safely(self, name: str) -> bool:
        try:
            _, more = self.step(name)
        except Exception as error:
            self._failed(name, error)
            return False
        if self._failures.pop(name, 0):
            log.info("projection %s recovered", name)
        return more

    def _failed(self, name: str, error: Exception) -> None:
        failures = self._failures.get(name, 0) + 1
        self._failures[name] = failures
        delay = min(MAX_BACKOFF, 0.25 * 2**failures)
        self._not_before[name] = time.monotonic() + delay
        state = "retrying" if failures < QUICK_RETRIES else "failed"
        log.error(
            "projection %s %s (failure %d, next try in %.1fs): %s",
            name,
            state,
            failures,
            delay,
            error,
            exc_info=failures == 1,
        )
        try:
            with self.engine.begin() as conn:
                positions.set_state(conn, name, state, repr(error)[:2000], failures)
        except Exception:
            log.exception("cannot record the state of projection %s", name)

    def status(self) -> list[Status]:
        head = self.head()
        with self.engine.connect() as conn:
            rows = [positions.read(conn, name) for name in self.projections]
        return [
            Status(name, row.position, head, row.state, row.error)
            if row is not None
            else Status(name, 0, head, "new", None)
            for name, row in zip(self.projections, rows, strict=True)
        ]
