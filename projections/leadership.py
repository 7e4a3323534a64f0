"""Which process applies which projection, and how a runner waits.

On PostgreSQL a runner leads a projection while it holds a session advisory
lock on its name (any number of ``idemsync serve`` and ``idemsync projections
run`` processes, on any hosts; the others stand by), and waits on the NOTIFY
that eventsourcing sends for every insert. On SQLite there is one process:
it always leads, and polls.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import psycopg
from sqlalchemy import Engine

log = logging.getLogger("idemsync.projections")

CHANNEL = "idemsync_events"


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a projection name."""
    digest = hashlib.sha256(f"idemsync.projection.{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _connect(engine: Engine) -> psycopg.Connection[Any]:
    url = engine.url.set(drivername="postgresql")
    return psycopg.connect(
        url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
    )


class Leadership:
    """Always the leader (SQLite); see ``AdvisoryLeadership`` for PostgreSQL."""

    @staticmethod
    def for_engine(engine: Engine) -> Leadership:
        if engine.dialect.name == "postgresql":
            return AdvisoryLeadership(engine)
        return Leadership()

    def holds(self, name: str) -> bool:
        return True

    def close(self) -> None:
        return None


class AdvisoryLeadership(Leadership):
    """Leads the projections whose advisory lock this session holds.

    The locks live as long as the session: at most every ``check_seconds``
    the session is pinged, and if it is gone (terminated, network loss,
    server restart) every lock is taken to be lost, so a stand-by that took
    over is not joined by the old leader."""

    check_seconds = 1.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: psycopg.Connection[Any] | None = None
        self.held: set[str] = set()
        self.checked = 0.0

    def holds(self, name: str) -> bool:
        if self.held and time.monotonic() - self.checked > self.check_seconds:
            self._check_session()
        if name in self.held:
            return True
        try:
            if self.conn is None or self.conn.closed:
                self.conn = _connect(self.engine)
                self.held.clear()
            row = self.conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (lock_key(name),)
            ).fetchone()
        except psycopg.Error as error:
            log.warning("cannot take the lock of projection %s: %s", name, error)
            self.close()
            return False
        if row is not None and row[0]:
            self.held.add(name)
            log.info("leading projection %s", name)
            return True
        return False

    def _check_session(self) -> None:
        self.checked = time.monotonic()
        if self.conn is None:
            self.close()
            return
        try:
            self.conn.execute("SELECT 1")
        except psycopg.Error as error:
            log.warning("lost the projection locks' session: %s", error)
            self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.held.clear()


class Waiter:
    """Sleeps ``poll_seconds`` between rounds (SQLite)."""

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds

    @staticmethod
    def for_engine(engine: Engine, poll_seconds: float) -> Waiter:
        if engine.dialect.name == "postgresql":
            return NotifyWaiter(engine, poll_seconds)
        return Waiter(poll_seconds)

    def wait(self) -> None:
        time.sleep(self.poll_seconds)

    def close(self) -> None:
        return None


class NotifyWaiter(Waiter):
    """Wakes on eventsourcing's NOTIFY, or after ``poll_seconds`` at most."""

    def __init__(self, engine: Engine, poll_seconds: float) -> None:
        super().__init__(poll_seconds)
        self.engine = engine
        self.conn: psycopg.Connection[Any] | None = None

    def wait(self) -> None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = _connect(self.engine)
                self.conn.execute(f"LISTEN {CHANNEL}")
            for _ in self.conn.notifies(timeout=self.poll_seconds, stop_after=1):
                break
        except psycopg.Error as error:
            log.warning("LISTEN failed, polling: %s", error)
            self.close()
            time.sleep(self.poll_seconds)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
