"""``idemsync audit verify``: recompute the ledger's hashes and the checkpoints.

Everything is read in one snapshot (PostgreSQL ``REPEATABLE READ``; a SQLite
read transaction), streamed in key order through server-side cursors, so
memory stays constant on a log of millions of events and writers are never
blocked. Two passes:

1. **Per aggregate**, in ``(originator_id, originator_version)`` order, the
   event table and the ledger are merge-joined:

   - an event without a ledger row was **inserted** behind the engine's back
     (or its ledger row was deleted);
   - a ledger row without an event: the event was **deleted**;
   - versions that jump (both rows gone) are **deleted** too, named as a run
     (``versions 3-5``);
   - an event and its ledger row are checked against the ledger hash,
     recomputed from the previous row's *stored* hash (the local check) and,
     when that does not match, from the previous row's *recomputed* hash
     (the chain from genesis). The row is **modified** when neither matches: its event's
     stored bytes or its ledger row (recorded time, provenance, notification
     id) were changed. When only the chain from genesis matches, this row is
     intact and the previous row's stored hash itself was edited: that is a
     broken chain, and it is reported once, in the previous row's finding
     (already ``modified``), not as a finding of this row. When only the
     local check matches, an earlier event was modified: this row is intact
     and reports nothing. One edited event is therefore exactly one finding,
     never a cascade down its aggregate.

   The chain is local to an aggregate: an attacker who rewrites an event
   *and* recomputes its ledger hash breaks the link to the next version (that
   version is then named ``modified``: the message says the previous version
   may have been rewritten with its hash), and for the last version of an
   aggregate, or a whole aggregate deleted, nothing in pass 1 can tell.

2. **Checkpoints**, in notification order: each checkpoint is recomputed from
   the ledger rows in its range (``infrastructure/audit/checkpoints.py``) and
   compared with the stored one, hash, event count and first id. Like pass 1
   it accepts the recomputation from the previous checkpoint's stored hash
   or from its recomputed hash, so one changed range or one edited checkpoint
   is one finding. Ledger rows after the last checkpoint are **not yet
   covered** (counted in the report; not a failure): only their aggregate's
   chain covers them until the next checkpoint.

What no recomputation can catch is a rewrite of the whole ledger and every
checkpoint after the change: the head checkpoint must be compared with a copy
kept outside the database (``anchor``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from domain.provenance import Provenance
from infrastructure.audit.checkpoints import Checkpoint, CheckpointDigest, checkpoint_of
from infrastructure.persistence.ledger import (
    GENESIS,
    event_hash,
    iso,
    parse_time,
    stored_provenance,
)

MODIFIED = "modified"
DELETED = "deleted"
INSERTED = "inserted"
CHECKPOINT = "checkpoint"
ANCHOR = "anchor"
FAILURES = frozenset({MODIFIED, DELETED, INSERTED, CHECKPOINT, ANCHOR})
KINDS = (MODIFIED, DELETED, INSERTED, CHECKPOINT, ANCHOR)

KEEP = 10_000
"""Findings kept in the report (all are counted)."""
BATCH = 2_000
"""Rows per fetch of a server-side cursor."""
PROGRESS_EVERY = 5_000


@dataclass(frozen=True)
class Finding:
    """Something that was changed behind the engine's back.

    ``notification_id``: the event's position in the global log, where one
    is known (None for a version that is gone with its ledger row). For a
    checkpoint: its first notification id, and ``checkpoint`` its seq."""

    kind: str
    notification_id: int | None
    aggregate_type: str | None
    aggregate_id: str | None
    version: int | None
    message: str
    checkpoint: int | None = None


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


@dataclass
class Report:
    """What ``verify`` found. ``findings`` keeps the first ``KEEP``;
    ``by_kind`` counts them all."""

    findings: list[Finding] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    events: int = 0
    ledger_rows: int = 0
    aggregates: int = 0
    checkpoints: int = 0
    unchecked_links: int = 0
    """Events whose link to the previous version cannot be checked (it is
    gone, already reported): their own hash is not recomputed."""
    head: Checkpoint | None = None
    uncovered_events: int = 0
    uncovered_first: int | None = None
    uncovered_last: int | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Any event modified, deleted or inserted, or a checkpoint differs."""
        return any(self.by_kind[kind] for kind in FAILURES)

    @property
    def counts(self) -> dict[str, int]:
        """Rows read and findings, by name."""
        return {
            "events": self.events,
            "ledger_rows": self.ledger_rows,
            "aggregates": self.aggregates,
            "checkpoints": self.checkpoints,
            "uncovered_events": self.uncovered_events,
            **{kind: self.by_kind[kind] for kind in KINDS},
        }

    def add(self, finding: Finding, keep: int) -> int | None:
        """Record ``finding``; its index in ``findings`` when kept."""
        self.by_kind[finding.kind] += 1
        if len(self.findings) >= keep:
            return None
        self.findings.append(finding)
        return len(self.findings) - 1

    def amend(self, index: int | None, note: str) -> None:
        if index is not None:
            found = self.findings[index]
            self.findings[index] = dataclasses.replace(
                found, message=f"{found.message}. {note}"
            )


ProgressCallback = Callable[[Progress], None]


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
            _AggregatePass(conn, report, keep, postgres).run(
                _Ticker("aggregates", events, started, progress)
            )
            _CheckpointPass(conn, report, keep, anchor).run(
                _Ticker("checkpoints", ledger, time.monotonic(), progress)
            )
        finally:
            conn.rollback()
    report.seconds = time.monotonic() - started
    return report


def _scalar(conn: Connection, sql: str) -> int:
    return int(conn.execute(text(sql)).scalar_one())


def _stream(conn: Connection, sql: str) -> Iterator[Any]:
    """Rows of ``sql`` through a server-side cursor (PostgreSQL) or a lazily
    stepped statement (SQLite), ``BATCH`` at a time."""
    result = conn.execute(text(sql), execution_options={"yield_per": BATCH})
    try:
        yield from result
    finally:
        result.close()


class _Ticker:
    """Calls ``progress`` every ``PROGRESS_EVERY`` rows and at the end."""

    def __init__(
        self,
        phase: str,
        total: int,
        started: float,
        progress: ProgressCallback | None,
    ) -> None:
        self.phase, self.total, self.started = phase, total, started
        self.progress = progress
        self.done = 0

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None and self.done % PROGRESS_EVERY == 0:
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


def _short(value: object) -> str:
    return f"{str(value)[:12]}…"


def _sqlite_order(value: object) -> tuple[int, Any]:
    """SQLite's sort order of mixed types: NULL, numbers, text, blobs."""
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))  # type: ignore[call-overload]


@dataclass
class _Chain:
    """Where pass 1 is within one aggregate.

    ``stored``: the stored hash of the previous ledger row (what the writer
    chained to); ``trusted``: its recomputed hash. None when unknown (after a
    missing version, or an event without a ledger row)."""

    originator_id: object
    expected: int = 1
    stored: bytes | None = GENESIS
    trusted: bytes | None = GENESIS
    previous_finding: int | None = None
    provenance: Provenance | None = None


class _AggregatePass:
    """Pass 1: events and ledger rows merge-joined by aggregate and version."""

    def __init__(
        self, conn: Connection, report: Report, keep: int, postgres: bool
    ) -> None:
        self.conn, self.report, self.keep = conn, report, keep
        self.postgres = postgres
        position = "notification_id" if postgres else "rowid"
        self.events_sql = (
            "SELECT originator_id, originator_version, topic, state, "
            f"{position} AS notification_id FROM idemsync_events "
            "ORDER BY originator_id, originator_version"
        )
        self.ledger_sql = (
            "SELECT originator_id, originator_version, notification_id, "
            "aggregate_type, aggregate_id, recorded_at, source, idempotency_key, "
            "occurred_at, hash FROM event_audit "
            "ORDER BY originator_id, originator_version"
        )

    def _key(self, row: Any) -> tuple[Any, Any]:
        if self.postgres:
            return (row.originator_id, row.originator_version)
        return (
            _sqlite_order(row.originator_id),
            _sqlite_order(row.originator_version),
        )

    def _merged(self) -> Iterator[tuple[Any, Any]]:
        """(event row or None, ledger row or None), in key order."""
        events = _stream(self.conn, self.events_sql)
        ledger = _stream(self.conn, self.ledger_sql)
        event, entry = next(events, None), next(ledger, None)
        while event is not None or entry is not None:
            event_key = None if event is None else self._key(event)
            entry_key = None if entry is None else self._key(entry)
            if entry_key is None or (event_key is not None and event_key < entry_key):
                yield event, None
                event = next(events, None)
            elif event_key is None or entry_key < event_key:
                yield None, entry
                entry = next(ledger, None)
            else:
                yield event, entry
                event, entry = next(events, None), next(ledger, None)

    def run(self, ticker: _Ticker) -> None:
        chain: _Chain | None = None
        for event, entry in self._merged():
            row = event if event is not None else entry
            if chain is None or row.originator_id != chain.originator_id:
                chain = _Chain(row.originator_id)
                self.report.aggregates += 1
            if event is not None:
                self.report.events += 1
                ticker.tick()
            if entry is not None:
                self.report.ledger_rows += 1
            self._row(chain, event, entry)
        ticker.report()

    def _add(self, finding: Finding) -> int | None:
        return self.report.add(finding, self.keep)

    def _provenance(self, chain: _Chain, event: Any, entry: Any) -> Provenance:
        if entry is not None:
            return Provenance(
                str(entry.aggregate_type),
                str(entry.aggregate_id),
                entry.source,
                entry.idempotency_key,
                entry.occurred_at,
            )
        try:
            state = json.loads(_state_bytes(event.state))
        except (ValueError, TypeError):
            state = {}
        if not isinstance(state, dict):
            state = {}
        return stored_provenance(str(event.topic or ""), state, chain.provenance)

    def _row(self, chain: _Chain, event: Any, entry: Any) -> None:
        row = event if event is not None else entry
        version = row.originator_version
        where = self._provenance(chain, event, entry)
        if entry is not None or chain.provenance is None:
            chain.provenance = where
        if isinstance(version, int) and version > chain.expected:
            self._gap(chain, where, chain.expected, version - 1)
        if isinstance(version, int):
            chain.expected = max(chain.expected, version + 1)
        if entry is None:
            self._add(
                Finding(
                    INSERTED,
                    _int_or_none(event.notification_id),
                    where.aggregate_type,
                    where.aggregate_id,
                    version,
                    "a stored event with no ledger row: inserted behind the "
                    "engine's back (or its ledger row was deleted)",
                )
            )
            # The writer chains the next version to GENESIS when the previous
            # ledger row is missing; whether it was, nothing here can tell.
            chain.stored, chain.trusted = None, GENESIS
            chain.previous_finding = None
            return
        stored = _hash_bytes(entry.hash)
        if event is None:
            self._add(
                Finding(
                    DELETED,
                    _int_or_none(entry.notification_id),
                    where.aggregate_type,
                    where.aggregate_id,
                    version,
                    "the event is gone from the event table; its ledger row "
                    f"remains (recorded {_recorded(entry)}, delivery "
                    f"{where.source}/{where.key})",
                )
            )
            chain.stored = chain.trusted = stored
            chain.previous_finding = None
            return
        self._check(chain, event, entry, where, stored)

    def _gap(self, chain: _Chain, where: Provenance, first: int, last: int) -> None:
        versions = (
            f"version {first} is" if first == last else (f"versions {first}-{last} are")
        )
        self._add(
            Finding(
                DELETED,
                None,
                where.aggregate_type,
                where.aggregate_id,
                first,
                f"{versions} missing: the event and its ledger row were deleted "
                "(the aggregate's versions jump)",
            )
        )
        chain.stored = chain.trusted = None
        chain.previous_finding = None

    def _check(
        self,
        chain: _Chain,
        event: Any,
        entry: Any,
        where: Provenance,
        stored: bytes | None,
    ) -> None:
        """Recompute the hash of an event that has its ledger row."""
        version = event.originator_version
        problems: list[str] = []
        if _int_or_none(entry.notification_id) != _int_or_none(event.notification_id):
            problems.append(
                f"its ledger row names notification {entry.notification_id}, "
                f"the event is stored at notification {event.notification_id}"
            )
        try:
            content = (
                event.originator_id
                if isinstance(event.originator_id, uuid.UUID)
                else uuid.UUID(str(event.originator_id)),
                int(version),
                str(event.topic or ""),
                _state_bytes(event.state),
                iso(parse_time(entry.recorded_at)),
            )
        except (ValueError, TypeError, OverflowError) as error:
            problems.append(f"its stored row is not readable: {error}")
            content = None

        def recompute(previous: bytes) -> str:
            assert content is not None
            originator_id, number, topic, state, recorded_at = content
            return event_hash(
                previous, originator_id, number, topic, state, recorded_at, where
            ).hex()

        recomputed: bytes | None = None
        if content is not None:
            local = recompute(chain.stored) if chain.stored is not None else None
            chained = None
            if local != entry.hash and chain.trusted not in (None, chain.stored):
                assert chain.trusted is not None
                chained = recompute(chain.trusted)
            if local == entry.hash:
                pass
            elif chained == entry.hash:
                if local is not None:
                    # This row chains from the hash recomputed for the
                    # previous one: that row's stored hash itself was edited.
                    self.report.amend(
                        chain.previous_finding,
                        f"Its ledger hash itself was changed: version "
                        f"{version} still chains from the hash recomputed here",
                    )
            elif chain.stored is None:
                # Chained to a row that is gone (already reported): the link
                # cannot be checked, so neither can this hash.
                self.report.unchecked_links += 1
            else:
                previous = (
                    f", or version {version - 1} was rewritten together with "
                    "its ledger hash"
                    if isinstance(version, int) and version > 1
                    else ""
                )
                problems.append(
                    "it does not match its ledger hash: the event's stored "
                    "bytes or its ledger row (recorded time, provenance, hash) "
                    f"were changed{previous}"
                )
                # What this row's hash should have been, for the next link.
                recomputed = bytes.fromhex(chained or local or "")
        chain.previous_finding = None
        if problems:
            chain.previous_finding = self._add(
                Finding(
                    MODIFIED,
                    _int_or_none(event.notification_id),
                    where.aggregate_type,
                    where.aggregate_id,
                    version,
                    "; ".join(problems),
                )
            )
        chain.stored = stored
        chain.trusted = recomputed if recomputed is not None else stored


def _position(row: Any) -> int:
    """A ledger row's notification id; an edited one that is not a number
    sorts last, as SQLite sorts text after numbers (pass 1 names it)."""
    position = _int_or_none(row.notification_id)
    return 2**63 - 1 if position is None else position


def _state_bytes(value: object) -> bytes:
    """An event's stored state as bytes (plain SQL on SQLite may have turned
    the blob into text: its content is what is hashed)."""
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _recorded(entry: Any) -> str:
    try:
        return iso(parse_time(entry.recorded_at))
    except (TypeError, ValueError):
        return str(entry.recorded_at)


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
    ) -> None:
        self.conn, self.report, self.keep, self.anchor = conn, report, keep, anchor

    def run(self, ticker: _Ticker) -> None:
        ledger = _stream(self.conn, self.LEDGER_SQL)
        row = next(ledger, None)
        stored: bytes | None = GENESIS
        trusted: bytes | None = GENESIS
        after, expected_seq = 0, 1
        anchored = unreadable = False
        for stored_row in _stream(self.conn, self.CHECKPOINTS_SQL):
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
            self._add(
                Finding(
                    ANCHOR,
                    None,
                    None,
                    None,
                    None,
                    f"there is no checkpoint {seq}, which the anchor names: the "
                    "checkpoint chain was cut back or replaced",
                    checkpoint=seq,
                )
            )
        ticker.report()

    def _add(self, finding: Finding) -> None:
        self.report.add(finding, self.keep)

    def _unreadable(self, row: Any, error: Exception) -> None:
        self._add(
            Finding(
                CHECKPOINT,
                None,
                None,
                None,
                None,
                f"checkpoint {row.seq} is not readable ({error}); the next one "
                "cannot be linked and is not checked",
                checkpoint=_int_or_none(row.seq),
            )
        )

    def _missing(self, expected: int, checkpoint: Checkpoint, after: int) -> None:
        last = checkpoint.seq - 1
        which = (
            f"checkpoint {expected} is"
            if expected == last
            else (f"checkpoints {expected}-{last} are")
        )
        self._add(
            Finding(
                CHECKPOINT,
                None,
                None,
                None,
                None,
                f"{which} missing (between notification {after} and checkpoint "
                f"{checkpoint.seq}, which cannot be linked and is not checked)",
                checkpoint=expected,
            )
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
        self._add(
            Finding(
                CHECKPOINT,
                checkpoint.first_notification_id,
                None,
                None,
                None,
                f"checkpoint {checkpoint.seq} (notifications "
                f"{checkpoint.first_notification_id}-"
                f"{checkpoint.last_notification_id}) differs: it stored "
                f"{checkpoint.events} events, hash {_short(checkpoint.hash)}; the "
                f"ledger now gives {count} events"
                + (f" from notification {first}" if first is not None else "")
                + f", hash {_short(now)}",
                checkpoint=checkpoint.seq,
            )
        )

    def _anchor_differs(self, checkpoint: Checkpoint) -> None:
        assert self.anchor is not None
        self._add(
            Finding(
                ANCHOR,
                checkpoint.first_notification_id,
                None,
                None,
                None,
                f"checkpoint {checkpoint.seq} has hash {_short(checkpoint.hash)}, "
                f"the anchor kept outside says {_short(self.anchor[1])}: the "
                "checkpoints were rewritten",
                checkpoint=checkpoint.seq,
            )
        )
