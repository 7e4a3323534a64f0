"""Group commit: the deliveries waiting in one process are decided and
committed together.

Each request hands its delivery to ``GroupCommit.submit`` (a thread) or
``GroupCommit.answer`` (the event loop, without a thread) and waits.
One writer thread takes every delivery waiting at that moment (never waiting
for more: a lone delivery goes at once) and does for all of them what the
request did for one: their first answers in one query, their aggregates read
together, each decided in memory (``SyncService.decide_batch``), and the
decisions committed in one transaction with ``SyncService.commit``. A busy
server makes a few statements, one table lock and one fsync for many
deliveries.

Per-delivery outcomes are kept:

- a delivery that repeats the key or fingerprint of one before it in the
  batch, or appends to the same aggregate, waits for the next batch, which
  reads what this one wrote (``DEFERRED``);
- when a batch fails on a conflict (another process wrote one of its
  aggregates or keys first), it is split in halves and each committed again,
  down to the decision that conflicts; that delivery alone is decided again
  in the next batch, on fresh state, up to ``SyncService.max_attempts``
  times. The others are not failed by it;
- a delivery whose body does not decode fails alone;
- any other failure (the store is down) fails the whole batch: nothing of it
  was stored, and each delivery is answered 503.

Waiting is bounded: a delivery that finds ``max_waiting`` others queued, or
that is still queued after ``wait_seconds``, is withdrawn and answered 503
(``Overloaded``) instead of piling up behind a slow store. One already taken
into a batch waits for that batch: its outcome is the truth.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError

from domain.application import Decision, Deferred, Pending, Verdict
from domain.delivery import Answer

if TYPE_CHECKING:
    from domain.application import SyncService


class Overloaded(Exception):
    """Too many deliveries waiting to commit, or waiting too long."""


@dataclass(eq=False)
class _Waiting:
    """A delivery in the queue; ``wake`` tells an event loop it is done."""

    pending: Pending
    done: threading.Event = field(default_factory=threading.Event)
    answer: Answer | None = None
    error: BaseException | None = None
    taken: bool = False
    wake: Callable[[], object] | None = None

    def finish(self) -> None:
        self.done.set()
        if self.wake is not None:
            self.wake()

    def outcome(self) -> Answer:
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer


class GroupCommit:
    """The writer thread of one process (see the module's docstring).
    ``commit`` is the service's (a test may wrap it)."""

    def __init__(
        self,
        service: SyncService,
        commit: Callable[[Sequence[Decision]], None] | None = None,
        *,
        max_batch: int = 500,
        max_waiting: int = 2000,
        wait_seconds: float = 5.0,
    ) -> None:
        self.service = service
        self._commit = service.commit if commit is None else commit
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
        """Decide and commit what is queued, then stop; later submits are
        refused."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def waiting(self) -> int:
        """How many deliveries are queued (not yet taken into a batch)."""
        with self._changed:
            return len(self._queue)

    def submit(self, pending: Pending) -> Answer:
        """The answer to ``pending``, decided and committed with others;
        ``Overloaded`` when that could not happen in time."""
        waiting = _Waiting(pending)
        self._enqueue(waiting)
        if not waiting.done.wait(self.wait_seconds):
            self._withdraw(waiting)
            waiting.done.wait()
        return waiting.outcome()

    async def answer(self, pending: Pending) -> Answer:
        """``submit`` for an event loop: it waits without a thread of its own
        (the writer thread wakes it)."""
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        waiting = _Waiting(pending, wake=lambda: loop.call_soon_threadsafe(wake))
        self._enqueue(waiting)
        try:
            await asyncio.wait_for(asyncio.shield(woken), self.wait_seconds)
        except TimeoutError:
            self._withdraw(waiting)
            await woken
        return waiting.outcome()

    def _enqueue(self, waiting: _Waiting) -> None:
        with self._changed:
            if self._closed or not self._thread.is_alive():
                raise Overloaded("the server is not committing deliveries now")
            if len(self._queue) >= self.max_waiting:
                raise Overloaded(f"{len(self._queue)} deliveries are waiting to commit")
            self._queue.append(waiting)
            self._changed.notify()

    def _withdraw(self, waiting: _Waiting) -> None:
        """Take ``waiting`` out of the queue, unless a batch has it (then its
        outcome is the truth: the caller waits for it)."""
        with self._changed:
            if not waiting.taken:
                self._queue.remove(waiting)
                raise Overloaded(
                    f"not committed within {self.wait_seconds:g} s; the store is slow"
                )

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._closed:
                    self._changed.wait()
                if not self._queue:
                    return
                batch = [
                    self._queue.popleft()
                    for _ in range(min(self.max_batch, len(self._queue)))
                ]
                for waiting in batch:
                    waiting.taken = True
            self._again(self._decide_and_commit(batch))

    def _decide_and_commit(self, batch: list[_Waiting]) -> list[_Waiting]:
        """Answer what ``batch`` can answer now; the rest, to decide again."""
        try:
            verdicts = self.service.decide_batch([w.pending for w in batch])
        except Exception as failure:
            self._fail(batch, failure)
            return []
        again: list[_Waiting] = []
        decided: list[tuple[_Waiting, Decision]] = []
        for waiting, verdict in zip(batch, verdicts, strict=True):
            if isinstance(verdict, Decision):
                decided.append((waiting, verdict))
            elif isinstance(verdict, Deferred):
                again.append(waiting)
            else:
                self._finish(waiting, verdict)
        if decided:
            again += self._commit_all(decided)
        return again

    def _commit_all(self, decided: list[tuple[_Waiting, Decision]]) -> list[_Waiting]:
        """Commit ``decided`` in one transaction; on a conflict, each half
        again, so that only the conflicting decision is decided again. The
        deliveries to decide again."""
        try:
            self._commit([decision for _, decision in decided])
        except IntegrityError:
            if len(decided) > 1:
                middle = len(decided) // 2
                return self._commit_all(decided[:middle]) + self._commit_all(
                    decided[middle:]
                )
            return self._lost(*decided[0])
        except Exception as failure:
            self._fail([waiting for waiting, _ in decided], failure)
            return []
        self.batches += 1
        self.committed += len(decided)
        for waiting, decision in decided:
            self._finish(waiting, decision.answer)
        return []

    def _lost(self, waiting: _Waiting, decision: Decision) -> list[_Waiting]:
        """A decision that lost to a concurrent writer: decide it again, on
        fresh state, unless it has lost too often."""
        self.service.conflicted(decision.kinds)
        pending = waiting.pending
        pending.attempts += 1
        if pending.attempts >= self.service.max_attempts:
            self._finish(waiting, self.service.too_much_contention(pending.delivery))
            return []
        return [waiting]

    def _again(self, again: list[_Waiting]) -> None:
        """Queue ``again`` first, in order, for the next batch."""
        if not again:
            return
        with self._changed:
            for waiting in again:
                waiting.taken = False
            self._queue.extendleft(reversed(again))

    @staticmethod
    def _finish(waiting: _Waiting, verdict: Verdict | BaseException) -> None:
        if isinstance(verdict, Answer):
            waiting.answer = verdict
        else:
            assert isinstance(verdict, BaseException)
            waiting.error = verdict
        waiting.finish()

    @staticmethod
    def _fail(batch: Sequence[_Waiting], failure: BaseException) -> None:
        for waiting in batch:
            waiting.error = failure
            waiting.finish()
