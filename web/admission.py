"""A bound on the deliveries one process works on at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from infrastructure.refusals import Busy


class Admission:
    """Counts the deliveries being decided and committed by this process and
    refuses one more than ``limit`` with a 503 at once, so that a slow store
    makes partners retry later instead of queueing requests without bound.
    A body is read before it is admitted: a client trickling bytes holds no
    place (``body_timeout_seconds`` bounds it). The event loop is one
    thread: the count needs no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.current = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        if self.current >= self.limit:
            raise Busy("too many requests in progress; retry")
        self.current += 1
        try:
            yield
        finally:
            self.current -= 1
