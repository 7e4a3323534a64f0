"""What both passes of ``idemsync audit verify`` share: rows streamed through
server-side cursors, progress every so many rows, stored values decoded
(an edited one may be anything)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from infrastructure.persistence.ledger import GENESIS


@dataclass(frozen=True)
class Progress:
    """Where ``verify`` is: ``phase`` is ``aggregates`` (pass 1) or
    ``checkpoints`` (pass 2); ``done`` of ``total`` rows."""

    phase: str
    done: int
    total: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


def _stream(
    conn: Connection, sql: str, batch: int, params: dict[str, Any] | None = None
) -> Iterator[Any]:
    """Rows of ``sql`` through a server-side cursor (PostgreSQL) or a lazily
    stepped statement (SQLite), ``batch`` (``verify.BATCH``) at a time."""
    result = conn.execute(
        text(sql), params or {}, execution_options={"yield_per": batch}
    )
    try:
        yield from result
    finally:
        result.close()


class _Ticker:
    """Calls ``progress`` every ``every`` (``verify.PROGRESS_EVERY``) rows
    and at the end."""

    def __init__(
        self,
        phase: str,
        total: int,
        started: float,
        progress: ProgressCallback | None,
        every: int,
    ) -> None:
        self.phase, self.total, self.started = phase, total, started
        self.progress, self.every = progress, every
        self.done = 0

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None and self.done % self.every == 0:
            self.report()

    def report(self) -> None:
        if self.progress is not None:
            self.progress(
                Progress(
                    self.phase,
                    self.done,
                    max(self.total, self.done),
                    time.monotonic() - self.started,
                )
            )


def _hash_bytes(value: object) -> bytes | None:
    """A ledger or checkpoint hash as bytes; None when it is not 32 bytes
    of hex (it was edited)."""
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        return None
    return raw if len(raw) == len(GENESIS) else None


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
