"""``idemsync audit verify``: recompute the ledger's hashes and the checkpoints.

Everything is read in one snapshot (PostgreSQL ``REPEATABLE READ``; a SQLite
read transaction), streamed in key order through server-side cursors, so
memory stays constant on a log of millions of events and writers are never
blocked. Two passes:

1. **Per aggregate**, in ``(originator_id, originator_version)`` order, the
   event table and the ledger are merge-joined: events **inserted**,
   **deleted** or **modified** behind the engine's back, one finding per
   edited event (``infrastructure/audit/aggregate_pass.py``).
2. **Checkpoints**, in notification order: each checkpoint is recomputed from
   the ledger rows in its range and compared with the stored one; ledger rows
   after the last checkpoint are **not yet covered**
   (``infrastructure/audit/checkpoint_pass.py``).

What no recomputation can catch is a rewrite of the whole ledger and every
checkpoint after the change: the head checkpoint must be compared with a copy
kept outside the database (``anchor``).

Findings and the report are in ``infrastructure/audit/findings.py``;
streaming, progress and decoding shared by both passes in
``infrastructure/audit/scan.py``.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import Connection, Engine, text

from infrastructure.audit.aggregate_pass import _AggregatePass
from infrastructure.audit.checkpoint_pass import _CheckpointPass
from infrastructure.audit.findings import (
    ANCHOR,
    CHECKPOINT,
    DELETED,
    FAILURES,
    INSERTED,
    KEEP,
    KINDS,
    MODIFIED,
    Finding,
    Report,
)
from infrastructure.audit.scan import Progress, ProgressCallback, _Ticker

__all__ = [
    "ANCHOR",
    "BATCH",
    "CHECKPOINT",
    "DELETED",
    "FAILURES",
    "INSERTED",
    "KEEP",
    "KINDS",
    "MODIFIED",
    "PROGRESS_EVERY",
    "Finding",
    "Progress",
    "ProgressCallback",
    "Report",
    "verify",
    "verify_chain",
]

BATCH = 2_000
"""Rows per fetch of a server-side cursor."""
PROGRESS_EVERY = 5_000


def verify(
    engine: Engine,
    progress: ProgressCallback | None = None,
    *,
    anchor: tuple[int, str] | None = None,
    keep: int = KEEP,
) -> Report:
    """Recompute every event's hash and every checkpoint of ``engine``'s
    store (see the module's docstring). ``anchor``: ``(seq, hash)`` of a
    checkpoint kept outside the database, which must still be there."""
    report = Report()
    started = time.monotonic()
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execution_options(isolation_level="REPEATABLE READ")
        else:
            conn.exec_driver_sql("BEGIN")  # one read snapshot for both passes
        try:
            events = _scalar(conn, "SELECT count(*) FROM idemsync_events")
            ledger = _scalar(conn, "SELECT count(*) FROM event_audit")
            _AggregatePass(conn, report, keep, postgres, BATCH).run(
                _Ticker("aggregates", events, started, progress, PROGRESS_EVERY)
            )
            _CheckpointPass(conn, report, keep, anchor, BATCH).run(
                _Ticker(
                    "checkpoints", ledger, time.monotonic(), progress, PROGRESS_EVERY
                )
            )
        finally:
            conn.rollback()
    report.seconds = time.monotonic() - started
    return report


def verify_chain(engine: Engine, originator_id: uuid.UUID) -> Report:
    """Pass 1 for one aggregate: its events and ledger rows, hash by hash,
    from genesis (what the console shows as an object's chain status). The
    checkpoints, which cover the whole log, are ``verify``'s."""
    report = Report()
    started = time.monotonic()
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        _AggregatePass(conn, report, KEEP, postgres, BATCH, originator_id).run(
            _Ticker("aggregates", 0, started, None, PROGRESS_EVERY)
        )
        conn.rollback()
    report.seconds = time.monotonic() - started
    return report


def _scalar(conn: Connection, sql: str) -> int:
    return int(conn.execute(text(sql)).scalar_one())
