"""Group commit: concurrent deliveries of one process share a transaction.

Each request thread decides its delivery on the state it loaded, then hands
the decision to ``GroupCommit.submit`` and waits. One writer thread takes
every decision waiting at that moment (never waiting for more: a lone
delivery commits at once) and commits them with ``SyncService.commit`` in one
transaction, so a busy server makes one commit, one table lock and one fsync
for many deliveries.

Per-delivery outcomes are kept:

- two decisions that append to the same aggregate (or record the same key
  or fingerprint) never go in one batch: the later one waits for the next;
- when a batch fails on a conflict (another process wrote one of its
  aggregates or keys first), it is split in halves and each committed again,
  down to the decision that conflicts, which alone gets the
  ``IntegrityError``: its thread decides it again on fresh state, as without
  group commit. The others are not failed by it;
- any other failure (the store is down) fails the whole batch: nothing of it
  was stored, and each delivery is answered 503.

Waiting is bounded: a decision that finds ``max_waiting`` others queued, or
that is still queued after ``wait_seconds``, is withdrawn and answered 503
(``Overloaded``) instead of piling up behind a slow store. One already taken
into a batch waits for that batch: its outcome is the truth.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eventsourcing.persistence import IntegrityError

from domain.application import Decision


class Overloaded(Exception):
    """Too many deliveries waiting to commit, or waiting too long."""


@dataclass(eq=False)
class _Waiting:
    decision: Decision
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    taken: bool = False


class GroupCommit:
    """The writer thread of one process (see the module's docstring).
    ``commit`` is ``SyncService.commit``."""

    def __init__(
        self,
        commit: Callable[[Sequence[Decision]], None],
        *,
        max_batch: int = 500,
        max_waiting: int = 2000,
        wait_seconds: float = 5.0,
    ) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self._queue: deque[_Waiting] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="group-commit", daemon=True
        )
        self.batches = 0
        self.committed = 0

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, then stop; later submits are refused."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, decision: Decision) -> None:
        """Commit ``decision`` (with others); ``IntegrityError`` when it lost
        a race, ``Overloaded`` when it could not be committed in time."""
        waiting = _Waiting(decision)
        with self._changed:
            if self._closed or not self._thread.is_alive():
                raise Overloaded("the server is not committing deliveries now")
            if len(self._queue) >= self.max_waiting:
                raise Overloaded(f"{len(self._queue)} deliveries are waiting to commit")
            self._queue.append(waiting)
            self._changed.notify()
        if not waiting.done.wait(self.wait_seconds):
            with self._changed:
                if not waiting.taken:
                    self._queue.remove(waiting)
                    raise Overloaded(
                        f"not committed within {self.wait_seconds:g} s; the store "
                        "is slow"
                    )
            waiting.done.wait()
        if waiting.error is not None:
            raise waiting.error

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._closed:
                    self._changed.wait()
                if not self._queue:
                    return
                batch = self._take()
            self._commit_all(batch)

    def _take(self) -> list[_Waiting]:
        """The queued decisions that can commit together, oldest first; the
        others stay queued, in order."""
        batch: list[_Waiting] = []
        claimed: set[object] = set()
        skipped: list[_Waiting] = []
        while self._queue and len(batch) < self.max_batch:
            waiting = self._queue.popleft()
            ids = waiting.decision.claims
            if ids & claimed:
                skipped.append(waiting)
                continue
            waiting.taken = True
            claimed |= ids
            batch.append(waiting)
        self._queue.extendleft(reversed(skipped))
        return batch

    def _commit_all(self, batch: list[_Waiting]) -> None:
        """Commit ``batch`` in one transaction; on a conflict, each half
        again, so that only the conflicting decision fails."""
        try:
            self._commit([waiting.decision for waiting in batch])
        except IntegrityError as conflict:
            if len(batch) > 1:
                middle = len(batch) // 2
                self._commit_all(batch[:middle])
                self._commit_all(batch[middle:])
                return
            batch[0].error = conflict
        except Exception as failure:
            for waiting in batch:
                waiting.error = failure
        else:
            self.batches += 1
            self.committed += len(batch)
        for waiting in batch:
            waiting.done.set()
