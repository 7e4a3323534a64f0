"""Rebuild a projection from the log while reads and ingest go on (specification §6).

1. Shadow tables ``<table>__r<unix-ms>`` beside the live ones, and a shadow
   position row ``<name>__r<unix-ms>`` at 0.
2. Replay the whole log into them in large batches (``ProjectionRunner.step``
   pointed at the shadow), then catch up with live traffic until close to the
   head.
3. One transaction: lock the live position row (the live runner takes the
   same lock for every batch, so it pauses), apply the last events to the
   shadow up to the head, optionally compare it with the live model, rename
   the live tables away and the shadow tables in (with the live index names),
   set the live position to that head, drop the old tables. Renames are
   transactional on PostgreSQL and SQLite: readers see the old model or the
   new one, never a mix.

Ingest never waits for a rebuild on PostgreSQL: writers touch no read model.
On SQLite every write holds the database's write lock, so each batch (and the
final transaction) makes concurrent writers wait that long.

A rebuild that died (crash, kill) leaves its shadow behind; the next rebuild
of that projection drops it first. One rebuild per projection at a time: a
PostgreSQL advisory lock, or a lock file beside the SQLite database.

Shadow tables, the swap, the clean-up and the lock are in
``projections.shadow``; the row-for-row comparison is in
``projections.compare``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, MetaData, text
from sqlalchemy.exc import OperationalError

from domain.preload import to_events
from projections import positions
from projections.base import Projection, Tables
from projections.compare import EXAMPLES, TableDiff, compare
from projections.runner import ProjectionRunner
from projections.shadow import (
    RebuildRunning,
    create_shadow,
    drop_leftovers,
    exclusive,
    new_suffix,
    swap,
)

__all__ = [
    "CATCH_UP_ROUNDS",
    "CLOSE_ENOUGH",
    "EXAMPLES",
    "FINAL_ATTEMPTS",
    "LOCK_TIMEOUT",
    "SQLITE_BATCH_SECONDS",
    "Progress",
    "RebuildReport",
    "RebuildRunning",
    "TableDiff",
    "rebuild",
]

CLOSE_ENOUGH = 200
"""Notification ids behind the head at which catching up stops: the final,
locking transaction applies the rest."""
SQLITE_BATCH_SECONDS = 0.25
"""SQLite: a batch holds the database's write lock, so batches are sized to
take about this long (at most ``batch_size``): writers wait, never time out."""
CATCH_UP_ROUNDS = 50
"""Batches past the first pass before catching up gives up (traffic faster
than the replay): the final transaction then applies what is left."""
FINAL_ATTEMPTS = 5
LOCK_TIMEOUT = "5s"
"""PostgreSQL: how long the final transaction waits for a lock (the live
runner's batch, a long read of a live table) before it rolls back and tries
again, instead of queueing every reader behind its rename."""


@dataclass(frozen=True)
class Progress:
    """Where a rebuild is; ``phase`` is replay, catch-up, swap or done."""

    name: str
    phase: str
    position: int
    head: int
    events: int
    elapsed: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        """Remaining ids at the rate ids were read so far."""
        if self.position <= 0 or self.elapsed <= 0:
            return None
        return max(0, self.head - self.position) * self.elapsed / self.position


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild did. ``differences`` is None when nothing was compared;
    ``compared_at`` is the position both sides were compared at, or a note
    explains why the live model was at another one."""

    name: str
    events: int
    seconds: float
    position: int
    swapped: bool
    differences: tuple[TableDiff, ...] | None = None
    compared_at: int | None = None
    note: str | None = None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def differing_rows(self) -> int:
        return sum(diff.differing for diff in self.differences or ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
            "position": self.position,
            "swapped": self.swapped,
            "compared_at": self.compared_at,
            "differing_rows": self.differing_rows,
            "differences": None
            if self.differences is None
            else [asdict(diff) for diff in self.differences],
            "note": self.note,
        }


@dataclass
class _Rebuild:
    """One rebuild's state, passed between its phases."""

    runner: ProjectionRunner
    name: str
    suffix: str
    batch_size: int
    progress: Callable[[Progress], None] | None
    started: float = field(default_factory=time.monotonic)
    events: int = 0

    @property
    def projection(self) -> Projection:
        return self.runner.projections[self.name]

    @property
    def shadow_name(self) -> str:
        return f"{self.name}{self.suffix}"

    def report(self, phase: str, position: int, head: int) -> None:
        if self.progress is not None:
            elapsed = time.monotonic() - self.started
            self.progress(
                Progress(self.name, phase, position, head, self.events, elapsed)
            )


def rebuild(
    runner: ProjectionRunner,
    name: str,
    *,
    verify: bool = False,
    dry_run: bool = False,
    batch_size: int = 5000,
    progress: Callable[[Progress], None] | None = None,
) -> RebuildReport:
    """Replay the log into a shadow of projection ``name`` and swap it in.

    ``verify`` compares the shadow with the live model first; ``dry_run``
    compares and drops the shadow, leaving the live model as it was."""
    if name not in runner.projections:
        raise KeyError(f"no projection {name!r}")
    with exclusive(runner.engine, name):
        drop_leftovers(runner.engine, runner.projections[name], name)
        job = _Rebuild(runner, name, new_suffix(), batch_size, progress)
        shadow = job.projection.define(MetaData(), job.suffix)
        try:
            create_shadow(runner.engine, shadow, job.shadow_name)
            _replay(job, shadow)
            return _finish(job, shadow, verify=verify or dry_run, dry_run=dry_run)
        finally:
            drop_leftovers(runner.engine, job.projection, name)


def _replay(job: _Rebuild, shadow: Tables) -> None:
    """Replay up to the head seen at the start, then chase the head until
    ``CLOSE_ENOUGH`` (or ``CATCH_UP_ROUNDS`` batches), one batch per
    transaction."""
    runner = job.runner
    sqlite = runner.engine.dialect.name == "sqlite"
    first_head = runner.head()
    position, rounds = 0, 0
    size = min(job.batch_size, 100) if sqlite else job.batch_size
    while True:
        head = runner.head()
        if position >= first_head:
            if head - position <= CLOSE_ENOUGH or rounds >= CATCH_UP_ROUNDS:
                return
            rounds += 1
        began = time.monotonic()
        applied, _ = runner.step(
            job.name,
            tables=shadow,
            position_name=job.shadow_name,
            batch_size=size,
            up_to=head,
        )
        job.events += applied
        if sqlite and applied == size:
            rate = applied / max(time.monotonic() - began, 1e-3)
            size = max(50, min(job.batch_size, int(rate * SQLITE_BATCH_SECONDS)))
        with runner.engine.connect() as conn:
            row = positions.read(conn, job.shadow_name)
        position = row.position if row is not None else 0
        job.report("replay" if rounds == 0 else "catch-up", position, head)


def _finish(
    job: _Rebuild, shadow: Tables, *, verify: bool, dry_run: bool
) -> RebuildReport:
    """The final transaction, tried again when it could not get its locks
    in time (a long read of a live table, SQLite's busy timeout)."""
    for attempt in range(FINAL_ATTEMPTS):
        try:
            return _final(job, shadow, verify=verify, dry_run=dry_run)
        except OperationalError:
            if attempt == FINAL_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def _final(
    job: _Rebuild, shadow: Tables, *, verify: bool, dry_run: bool
) -> RebuildReport:
    """Holding the live position row (the live runner waits): bring the
    shadow to the live position and compare there (when verifying), bring it
    to the head and swap; or roll everything back (dry run)."""
    live = job.runner.tables[job.name]
    differences, compared_at, note = None, None, None
    with job.runner.engine.connect() as conn, conn.begin() as transaction:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        live_position = positions.lock(conn, job.name)
        position = positions.lock(conn, job.shadow_name)
        head = job.runner.head()
        job.report("swap", position, head)
        events = _apply(job, conn, shadow, position, live_position)
        position = max(position, live_position)
        if verify:
            if live_position < position:
                note = _bring_live(job, conn, live, live_position, position)
            differences = tuple(compare(conn, live[k], shadow[k]) for k in live)
            compared_at = position if note is None else None
        if dry_run:
            transaction.rollback()
        else:
            events += _apply(job, conn, shadow, position, head)
            swap(conn, live, shadow, job.suffix)
            positions.advance(conn, job.name, head)
            positions.remove(conn, job.shadow_name)
            position = head
    job.events += events
    job.report("done", position, head)
    seconds = time.monotonic() - job.started
    return RebuildReport(
        job.name,
        job.events,
        seconds,
        position,
        not dry_run,
        differences,
        compared_at,
        note,
    )


def _apply(
    job: _Rebuild, conn: Connection, tables: Tables, start: int, stop: int
) -> int:
    """Apply the projection's events after ``start`` up to ``stop`` to
    ``tables`` on ``conn``, inside the caller's (locked) transaction."""
    service, projection = job.runner.service, job.projection
    applied = 0
    while start < stop:
        notifications = service.recorder.select_notifications(
            start + 1, job.batch_size, stop=stop, topics=projection.topics
        )
        events = to_events(service.mapper, notifications)
        projection.process_batch(conn, tables, events)
        applied += len(notifications)
        if len(notifications) < job.batch_size:
            break
        start = notifications[-1].id
    return applied


def _bring_live(
    job: _Rebuild, conn: Connection, live: Tables, start: int, stop: int
) -> str | None:
    """Apply to the live model (as its runner would: it is paused) the events
    it has not applied yet, so that both sides are compared at one position.
    It is about to be replaced, or rolled back in a dry run. A failure (the
    live model is what is broken) is noted, not raised."""
    try:
        with conn.begin_nested():
            _apply(job, conn, live, start, stop)
    except Exception as error:
        return (
            f"the live model is at {start} and could not apply the events up to "
            f"{stop} ({type(error).__name__}): the differences include them"
        )
    return None
