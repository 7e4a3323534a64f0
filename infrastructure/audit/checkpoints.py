"""Global checkpoints: the audit ledger chained in notification order.

Each event's ledger row carries a hash chained to the previous event of its
aggregate (``infrastructure/persistence/ledger.py``). That chain covers an
aggregate's history, but not the log as a whole: deleting the last event of
an aggregate, or a whole aggregate, leaves no broken link behind. Checkpoints
close that hole. Checkpoint ``k`` covers the ledger rows whose notification
id is in ``(last_notification_id of k-1, last_notification_id of k]``::

    hash_k = SHA-256(hash_{k-1}
                     | for each row, in notification order:
                       notification id (8 bytes, big-endian) | row hash (32 bytes))

with ``hash_0`` = ``GENESIS`` (32 zero bytes). Every field has a fixed width,
so no two different inputs are framed alike.

Reading ``notification_id > last`` sees a gap-free prefix of the log, so a
checkpoint never covers a later event while an earlier one is still to
commit (which would leave that earlier one outside every checkpoint):

- PostgreSQL: the recorder takes ``LOCK TABLE … IN EXCLUSIVE MODE`` on the
  event table before it inserts events and their ledger rows, and holds it
  until its commit (as eventsourcing's own recorder does). Writers are
  serialised, notification ids are drawn under the lock, and a transaction
  is visible before its lock is released, so ids become visible in
  increasing order: a statement that sees id ``n`` sees every committed id
  below ``n``. (Ids of rolled-back transactions are holes that are never
  filled.) The reading statement is one statement, hence one snapshot.
- SQLite: there is one writer at a time, and a reader sees a committed
  snapshot. ``step`` takes the write lock (``BEGIN IMMEDIATE``) before it
  reads, so it is also serialised with the recorders and with other
  checkpointers.

Several checkpointers (one per ``idemsync serve`` process) may run at once.
Each reads the last checkpoint ``k`` and inserts ``k+1``; ``seq`` is the
primary key, so of two that read the same ``k`` only one insert commits, the
other gets a primary-key conflict, rolls back and leaves the chain to the
winner: the chain never forks.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from infrastructure.periodic import Periodic
from infrastructure.persistence.deliveries import moment
from infrastructure.persistence.ledger import GENESIS, parse_time

log = logging.getLogger("idemsync.checkpoints")

MAX_EVENTS = 10_000
"""The most ledger rows one checkpoint covers (one short transaction)."""


def checkpoint_hash(previous: bytes, rows: Iterable[tuple[int, bytes]]) -> bytes:
    """``hash_k`` from ``hash_{k-1}`` and the ``(notification id, ledger
    hash)`` pairs of checkpoint ``k``, in notification order."""
    digest = CheckpointDigest(previous)
    for notification_id, row_hash in rows:
        digest.add(notification_id, row_hash)
    return digest.digest()


class CheckpointDigest:
    """``checkpoint_hash`` one row at a time (for streaming)."""

    def __init__(self, previous: bytes) -> None:
        if len(previous) != len(GENESIS):
            raise ValueError("a checkpoint hash is 32 bytes")
        self._digest = hashlib.sha256(previous)
        self.events = 0

    def add(self, notification_id: int, row_hash: bytes) -> None:
        if len(row_hash) != len(GENESIS):
            raise ValueError("a ledger hash is 32 bytes")
        self._digest.update(notification_id.to_bytes(8, "big"))
        self._digest.update(row_hash)
        self.events += 1

    def digest(self) -> bytes:
        return self._digest.digest()


@dataclass(frozen=True)
class Checkpoint:
    """One ``checkpoints`` row."""

    seq: int
    first_notification_id: int
    last_notification_id: int
    events: int
    hash: str
    created_at: datetime


HEAD_SQL = text(
    "SELECT seq, first_notification_id, last_notification_id, events, hash, "
    "created_at FROM checkpoints ORDER BY seq DESC LIMIT 1"
)
NEXT_ROWS_SQL = text(
    "SELECT notification_id, hash FROM event_audit "
    "WHERE notification_id > :last ORDER BY notification_id LIMIT :limit"
)
INSERT_SQL = text(
    "INSERT INTO checkpoints (seq, first_notification_id, last_notification_id, "
    "events, hash, created_at) VALUES (:seq, :first, :last, :events, :hash, :at)"
)


def checkpoint_of(row: object) -> Checkpoint:
    """A ``checkpoints`` row (as SQLAlchemy returns it) as a ``Checkpoint``."""
    return Checkpoint(
        int(row.seq),  # type: ignore[attr-defined]
        int(row.first_notification_id),  # type: ignore[attr-defined]
        int(row.last_notification_id),  # type: ignore[attr-defined]
        int(row.events),  # type: ignore[attr-defined]
        str(row.hash),  # type: ignore[attr-defined]
        parse_time(row.created_at),  # type: ignore[attr-defined]
    )


def head(engine: Engine) -> Checkpoint | None:
    """The last checkpoint, None before the first."""
    with engine.connect() as conn:
        row = conn.execute(HEAD_SQL).first()
    return None if row is None else checkpoint_of(row)


class Checkpointer:
    """Writes the next checkpoints of ``engine``'s ledger."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conflicts = 0
        """How many times another checkpointer wrote a checkpoint first."""

    def step(self, max_events: int = MAX_EVENTS) -> Checkpoint | None:
        """Write the checkpoint after the last one, covering at most
        ``max_events`` new ledger rows, in one transaction. None when there is
        nothing new, or when another checkpointer wrote that checkpoint first
        (then ``conflicts`` counts it)."""
        written, _ = self._step(max_events)
        return written

    def catch_up(
        self, max_events: int = MAX_EVENTS, stop: threading.Event | None = None
    ) -> Checkpoint | None:
        """Write checkpoints until every ledger row is covered (or ``stop`` is
        set); the head checkpoint then, written here or by another
        checkpointer."""
        while stop is None or not stop.is_set():
            written, raced = self._step(max_events)
            if written is None and not raced:
                break
        return head(self.engine)

    def _step(self, max_events: int) -> tuple[Checkpoint | None, bool]:
        """The checkpoint written, and whether another one won the race."""
        with self.engine.connect() as conn:
            self._begin(conn)
            try:
                written = self._write(conn, max_events)
                conn.commit()
            except IntegrityError:
                conn.rollback()
                self.conflicts += 1
                log.debug("another checkpointer wrote the next checkpoint first")
                return None, True
            except BaseException:
                conn.rollback()
                raise
        return written, False

    def _begin(self, conn: Connection) -> None:
        if conn.dialect.name == "sqlite":
            # The write lock before the reads: serialised with every writer.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def _write(self, conn: Connection, max_events: int) -> Checkpoint | None:
        following = self._next(conn, max_events)
        if following is not None:
            self._insert(conn, following)
        return following

    def _next(self, conn: Connection, max_events: int) -> Checkpoint | None:
        """The checkpoint after the last one, not yet written."""
        last = conn.execute(HEAD_SQL).first()
        previous = GENESIS if last is None else bytes.fromhex(last.hash)
        after = 0 if last is None else int(last.last_notification_id)
        rows = conn.execute(NEXT_ROWS_SQL, {"last": after, "limit": max_events}).all()
        if not rows:
            return None
        digest = CheckpointDigest(previous)
        for notification_id, row_hash in rows:
            digest.add(int(notification_id), bytes.fromhex(row_hash))
        return Checkpoint(
            seq=1 if last is None else int(last.seq) + 1,
            first_notification_id=int(rows[0].notification_id),
            last_notification_id=int(rows[-1].notification_id),
            events=len(rows),
            hash=digest.digest().hex(),
            created_at=datetime.now(UTC),
        )

    def _insert(self, conn: Connection, checkpoint: Checkpoint) -> None:
        """Insert ``checkpoint``; an ``IntegrityError`` when its seq exists."""
        conn.execute(
            INSERT_SQL,
            {
                "seq": checkpoint.seq,
                "first": checkpoint.first_notification_id,
                "last": checkpoint.last_notification_id,
                "events": checkpoint.events,
                "hash": checkpoint.hash,
                "at": moment(self.engine, checkpoint.created_at),
            },
        )


class PeriodicCheckpoint(Periodic):
    """Checkpoints the ledger at start, then every ``interval_seconds``
    (checkpointing must never stop the server)."""

    what = "writing audit checkpoints"

    def __init__(self, engine: Engine, interval_seconds: float = 10.0) -> None:
        super().__init__("checkpoints", interval_seconds)
        self.checkpointer = Checkpointer(engine)

    def run_once(self, stop: threading.Event) -> None:
        self.checkpointer.catch_up(stop=stop)
