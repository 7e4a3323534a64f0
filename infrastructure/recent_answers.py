"""First answers this process has read from the delivery log, kept in memory.

A delivery's first answer never changes once it is recorded (a resolution
or a replay is recorded beside it; pruning a record leaves the receipt,
which holds the same answer), so an answer read from the log stays true for
ever, in every process. Keeping the most recent ones lets the server answer a
partner's retries without a read: the duplicate path then does no I/O at all
and can answer on the event loop, without a worker thread.

Only answers read back from the log are kept, never one built in memory
before its commit: what a retry gets is byte for byte what the log holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from domain.delivery import FirstAnswer

DEFAULT_SIZE = 10_000
"""Answers kept per process: about 10 MB at most, for a day's retries of a
busy source (a partner retries a failed delivery within minutes to hours)."""


class RecentAnswers:
    """A bounded, thread-safe map ``(source, key) → FirstAnswer``; the least
    recently used answer goes first. ``hits``/``misses`` count lookups."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._answers: OrderedDict[tuple[str, str], FirstAnswer] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, source: str, key: str) -> FirstAnswer | None:
        where = (source, key)
        with self._lock:
            first = self._answers.get(where)
            if first is None:
                self.misses += 1
                return None
            self._answers.move_to_end(where)
            self.hits += 1
            return first

    def put(self, source: str, key: str, first: FirstAnswer) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._answers[(source, key)] = first
            self._answers.move_to_end((source, key))
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)
