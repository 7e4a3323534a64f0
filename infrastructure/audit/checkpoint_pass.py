"""Pass 2 of ``idemsync audit verify``: every checkpoint recomputed from the
ledger, in notification order.

Each checkpoint is recomputed from the ledger rows in its range
(``infrastructure/audit/checkpoints.py``) and compared with the stored one,
hash, event count and first id. Like pass 1 it accepts the recomputation
from the previous checkpoint's stored hash or from its recomputed hash, so
one changed range or one edited checkpoint is one finding. Ledger rows after
the last checkpoint are **not yet covered** (counted in the report; not a
failure): only their aggregate's chain covers them until the next
checkpoint.

An ``anchor``, the ``(seq, hash)`` of a checkpoint kept outside the
database, must still be there with the same hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Connection

from infrastructure.audit.checkpoints import Checkpoint, CheckpointDigest, checkpoint_of
from infrastructure.audit.findings import ANCHOR, CHECKPOINT, Finding, Report
from infrastructure.audit.scan import _hash_bytes, _int_or_none, _stream, _Ticker
from infrastructure.persistence.ledger import GENESIS


def _short(value: object) -> str:
    return f"{str(value)[:12]}…"


def _position(row: Any) -> int:
    """A ledger row's notification id; an edited one that is not a number
    sorts last, as SQLite sorts text after numbers (pass 1 names it)."""
    position = _int_or_none(row.notification_id)
    return 2**63 - 1 if position is None else position


class _CheckpointPass:
    """Pass 2: every checkpoint recomputed from the ledger, in order."""

    LEDGER_SQL = (
        "SELECT notification_id, hash FROM event_audit ORDER BY notification_id"
    )
    CHECKPOINTS_SQL = (
        "SELECT seq, first_notification_id, last_notification_id, events, hash, "
        "created_at FROM checkpoints ORDER BY seq"
    )

    def __init__(
        self,
        conn: Connection,
        report: Report,
        keep: int,
        anchor: tuple[int, str] | None,
        batch: int,
    ) -> None:
        self.conn, self.report, self.keep, self.anchor = conn, report, keep, anchor
        self.batch = batch

    def run(self, ticker: _Ticker) -> None:
        ledger = _stream(self.conn, self.LEDGER_SQL, self.batch)
        row = next(ledger, None)
        stored: bytes | None = GENESIS
        trusted: bytes | None = GENESIS
        after, expected_seq = 0, 1
        anchored = unreadable = False
        for stored_row in _stream(self.conn, self.CHECKPOINTS_SQL, self.batch):
            self.report.checkpoints += 1
            try:
                checkpoint = checkpoint_of(stored_row)
            except (TypeError, ValueError) as error:
                self._unreadable(stored_row, error)
                unreadable = True
                continue
            self.report.head = checkpoint
            linked, unreadable = not unreadable, False
            if checkpoint.seq != expected_seq:
                if linked:
                    self._missing(expected_seq, checkpoint, after)
                linked = False
            expected_seq = checkpoint.seq + 1
            digests = {
                previous: CheckpointDigest(previous)
                for previous in (stored, trusted)
                if previous is not None
            }
            first: int | None = None
            count = 0
            while row is not None and _position(row) <= (
                checkpoint.last_notification_id
            ):
                ticker.tick()
                position = _position(row)
                if first is None:
                    first = position
                count += 1
                row_hash = (
                    _hash_bytes(row.hash)
                    or hashlib.sha256(
                        b"unreadable ledger hash:" + str(row.hash).encode()
                    ).digest()
                )
                for digest in digests.values():
                    digest.add(max(position, 0), row_hash)
                row = next(ledger, None)
            recomputed = {
                previous: digest.digest().hex() for previous, digest in digests.items()
            }
            if linked and not (
                checkpoint.hash in recomputed.values()
                and checkpoint.events == count
                and checkpoint.first_notification_id == first
            ):
                self._differs(checkpoint, after, count, first, recomputed, stored)
            if self.anchor is not None and checkpoint.seq == self.anchor[0]:
                anchored = True
                if checkpoint.hash != self.anchor[1]:
                    self._anchor_differs(checkpoint)
            # The next checkpoint may chain from this one's stored hash or,
            # when this one's hash itself was edited, from its recomputation.
            base = trusted if trusted is not None else stored
            chained = recomputed.get(base) if base is not None else None
            matched = checkpoint.hash in recomputed.values()
            stored = _hash_bytes(checkpoint.hash)
            if matched or not linked or chained is None:
                trusted = stored
            else:
                trusted = bytes.fromhex(chained)
            after = max(after, checkpoint.last_notification_id)
        while row is not None:
            ticker.tick()
            self.report.uncovered_events += 1
            if self.report.uncovered_first is None:
                self.report.uncovered_first = _position(row)
            self.report.uncovered_last = _position(row)
            row = next(ledger, None)
        if self.anchor is not None and not anchored:
            seq, _ = self.anchor
            self._flag(
                ANCHOR,
                seq,
                f"there is no checkpoint {seq}, which the anchor names: the "
                "checkpoint chain was cut back or replaced",
            )
        ticker.report()

    def _flag(
        self,
        kind: str,
        checkpoint: int | None,
        message: str,
        first_notification: int | None = None,
    ) -> None:
        """Report a finding about a checkpoint (or the anchor), which names
        no single event."""
        finding = Finding(
            kind, first_notification, None, None, None, message, checkpoint
        )
        self.report.add(finding, self.keep)

    def _unreadable(self, row: Any, error: Exception) -> None:
        self._flag(
            CHECKPOINT,
            _int_or_none(row.seq),
            f"checkpoint {row.seq} is not readable ({error}); the next one "
            "cannot be linked and is not checked",
        )

    def _missing(self, expected: int, checkpoint: Checkpoint, after: int) -> None:
        last = checkpoint.seq - 1
        which = (
            f"checkpoint {expected} is"
            if expected == last
            else (f"checkpoints {expected}-{last} are")
        )
        self._flag(
            CHECKPOINT,
            expected,
            f"{which} missing (between notification {after} and checkpoint "
            f"{checkpoint.seq}, which cannot be linked and is not checked)",
        )

    def _differs(
        self,
        checkpoint: Checkpoint,
        after: int,
        count: int,
        first: int | None,
        recomputed: dict[bytes, str],
        stored: bytes | None,
    ) -> None:
        now = recomputed.get(stored) if stored is not None else None
        now = now or next(iter(recomputed.values()), "?")
        self._flag(
            CHECKPOINT,
            checkpoint.seq,
            f"checkpoint {checkpoint.seq} (notifications "
            f"{checkpoint.first_notification_id}-"
            f"{checkpoint.last_notification_id}) differs: it stored "
            f"{checkpoint.events} events, hash {_short(checkpoint.hash)}; the "
            f"ledger now gives {count} events"
            + (f" from notification {first}" if first is not None else "")
            + f", hash {_short(now)}",
            first_notification=checkpoint.first_notification_id,
        )

    def _anchor_differs(self, checkpoint: Checkpoint) -> None:
        assert self.anchor is not None
        self._flag(
            ANCHOR,
            checkpoint.seq,
            f"checkpoint {checkpoint.seq} has hash {_short(checkpoint.hash)}, "
            f"the anchor kept outside says {_short(self.anchor[1])}: the "
            "checkpoints were rewritten",
            first_notification=checkpoint.first_notification_id,
        )
