"""Pass 1 of ``idemsync audit verify``: events and ledger rows merge-joined
by aggregate and version.

Per aggregate, in ``(originator_id, originator_version)`` order, the event
table and the ledger are merge-joined:

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
aggregate, or a whole aggregate deleted, nothing in pass 1 can tell (the
checkpoints can: ``infrastructure/audit/checkpoint_pass.py``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from domain.provenance import Provenance
from infrastructure.audit.findings import DELETED, INSERTED, MODIFIED, Finding, Report
from infrastructure.audit.scan import _hash_bytes, _int_or_none, _stream, _Ticker
from infrastructure.persistence.ledger import (
    GENESIS,
    event_hash,
    iso,
    parse_time,
    stored_provenance,
)


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
        self,
        conn: Connection,
        report: Report,
        keep: int,
        postgres: bool,
        batch: int,
        only: uuid.UUID | None = None,
    ) -> None:
        """``only``: check that one aggregate's chain, not every one."""
        self.conn, self.report, self.keep = conn, report, keep
        self.postgres, self.batch = postgres, batch
        position = "notification_id" if postgres else "rowid"
        where = "" if only is None else "WHERE originator_id = :only "
        self.params = {} if only is None else {"only": only if postgres else only.hex}
        self.events_sql = (
            "SELECT originator_id, originator_version, topic, state, "
            f"{position} AS notification_id FROM idemsync_events {where}"
            "ORDER BY originator_id, originator_version"
        )
        self.ledger_sql = (
            "SELECT originator_id, originator_version, notification_id, "
            "aggregate_type, aggregate_id, recorded_at, source, idempotency_key, "
            f"occurred_at, hash, namespace FROM event_audit {where}"
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
        events = _stream(self.conn, self.events_sql, self.batch, self.params)
        ledger = _stream(self.conn, self.ledger_sql, self.batch, self.params)
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
                entry.namespace,
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


def _state_bytes(value: object) -> bytes:
    """An event's stored state as bytes (plain SQL on SQLite may have turned
    the blob into text: its content is what is hashed)."""
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8")


def _recorded(entry: Any) -> str:
    try:
        return iso(parse_time(entry.recorded_at))
    except (TypeError, ValueError):
        return str(entry.recorded_at)
