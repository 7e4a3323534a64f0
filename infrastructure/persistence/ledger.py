"""The audit ledger: each event's provenance and hash, beside the event.

The recorders append one ``event_audit`` row per event in the transaction
that inserts the event. The row says which object and which delivery the
event came from, when it was recorded (the ``as_of`` clock), and carries a
SHA-256 chained to the previous event of the same aggregate::

    hash(v) = SHA-256(hash(v-1) | originator id | version
                      | SHA-256(stored state) | topic | recorded_at
                      | aggregate type and id | source | key | occurred_at
                      [| namespace])

(the texts length-prefixed), with ``hash(0)`` = 32 zero bytes; the
namespace is hashed when it is not ``DEFAULT_NAMESPACE``, so that the rows
written before namespaces (all in it) verify as they were written. Changing an
event's stored bytes, or its ledger row, or removing an event from the middle
of its aggregate's history, breaks the chain;
``infrastructure/audit/checkpoints.py`` chains the ledger in global order so
the end of the log is covered too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from eventsourcing.persistence import StoredEvent
from sqlalchemy import Connection, text

from domain.namespaces import DEFAULT_NAMESPACE
from domain.provenance import Provenance

log = logging.getLogger("idemsync.ledger")

GENESIS = bytes(32)
LEDGER_COLUMNS = (
    "originator_id",
    "originator_version",
    "notification_id",
    "aggregate_type",
    "aggregate_id",
    "recorded_at",
    "source",
    "idempotency_key",
    "occurred_at",
    "hash",
    "namespace",
)
KINDS = {
    "domain.order:Order": "order",
    "domain.customer:Customer": "customer",
    "domain.payment:Payment": "payment",
    "domain.receipt:Receipt": "delivery",
}
"""The aggregate type of each aggregate class's topic (for events stored
before the ledger existed)."""


def iso(moment: datetime) -> str:
    """A time as the ledger hashes it: ISO 8601, UTC, microseconds (a time
    without a zone is UTC, as in ``parse_time``)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def parse_time(value: datetime | str) -> datetime:
    """A stored time: a ``timestamptz`` (PostgreSQL) or ISO 8601 text
    (SQLite); one without a zone is UTC. The one reader of stored times."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _field(digest: Any, value: str | None) -> None:
    """Length-prefixed, so that no two different field lists hash alike."""
    data = b"\xff" if value is None else value.encode("utf-8")
    digest.update(len(data).to_bytes(4, "big"))
    digest.update(data)


def event_hash(
    previous: bytes,
    originator_id: uuid.UUID,
    version: int,
    topic: str,
    state: bytes,
    recorded_at: str,
    provenance: Provenance,
) -> bytes:
    """The chained hash of one event (see the module's docstring)."""
    digest = hashlib.sha256(previous)
    digest.update(originator_id.bytes)
    digest.update(version.to_bytes(8, "big"))
    digest.update(hashlib.sha256(state).digest())
    for value in (
        topic,
        recorded_at,
        provenance.aggregate_type,
        provenance.aggregate_id,
        provenance.source,
        provenance.key,
        provenance.occurred_at,
    ):
        _field(digest, value)
    if provenance.namespace != DEFAULT_NAMESPACE:
        _field(digest, provenance.namespace)
    return digest.digest()


@dataclass(frozen=True)
class LedgerEntry:
    """One ``event_audit`` row."""

    originator_id: uuid.UUID
    originator_version: int
    notification_id: int
    provenance: Provenance
    recorded_at: datetime
    hash: bytes


def chain(
    stored_events: Sequence[StoredEvent],
    notification_ids: Sequence[int],
    provenance: Mapping[tuple[uuid.UUID, int], Provenance],
    previous: Mapping[uuid.UUID, tuple[bytes, datetime | None]],
    now: datetime,
) -> list[LedgerEntry]:
    """The ledger entries of newly inserted events.

    ``previous``: the hash and recorded time of the event before each
    aggregate's first new one (``GENESIS``/None for a new aggregate). An
    aggregate's recorded times never go backwards, even across hosts whose
    clocks differ a little: an event is recorded no earlier than the one
    before it.
    """
    last = dict(previous)
    entries = []
    for stored, notification_id in zip(stored_events, notification_ids, strict=True):
        originator_id = uuid.UUID(str(stored.originator_id))
        version = stored.originator_version
        before, before_at = last.get(originator_id, (GENESIS, None))
        at = now if before_at is None or now > before_at else before_at
        where = provenance.get((originator_id, version)) or Provenance(
            "unknown", originator_id.hex
        )
        digest = event_hash(
            before, originator_id, version, stored.topic, stored.state, iso(at), where
        )
        last[originator_id] = (digest, at)
        entries.append(
            LedgerEntry(originator_id, version, notification_id, where, at, digest)
        )
    return entries


class Cursor(Protocol):
    """What the ledger needs of a DB-API cursor (psycopg's or sqlite3's),
    whose rows can be read by column name."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def executemany(self, query: Any, params_seq: Any, /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


class LedgerWriter:
    """Appends ledger rows inside a recorder's transaction. ``placeholder``
    is the driver's parameter mark; SQLite keeps ids as hex text and times as
    ISO text, PostgreSQL as ``uuid`` and ``timestamptz``."""

    def __init__(self, placeholder: str, *, text_types: bool) -> None:
        self.text_types = text_types
        marks = ", ".join([placeholder] * len(LEDGER_COLUMNS))
        self.insert_sql = (
            f"INSERT INTO event_audit ({', '.join(LEDGER_COLUMNS)}) VALUES ({marks})"
        )
        self.placeholder = placeholder

    def append(
        self,
        cursor: Cursor,
        stored_events: Sequence[StoredEvent],
        notification_ids: Sequence[int],
        provenance: Mapping[tuple[uuid.UUID, int], Provenance],
    ) -> None:
        firsts: dict[uuid.UUID, int] = {}
        for stored in stored_events:
            originator_id = uuid.UUID(str(stored.originator_id))
            firsts.setdefault(originator_id, stored.originator_version)
        entries = chain(
            stored_events,
            notification_ids,
            provenance,
            self._previous(cursor, firsts),
            datetime.now(UTC),
        )
        cursor.executemany(
            self.insert_sql, [row_values(entry, self.text_types) for entry in entries]
        )

    def _previous(
        self, cursor: Cursor, firsts: Mapping[uuid.UUID, int]
    ) -> dict[uuid.UUID, tuple[bytes, datetime | None]]:
        """The hash and recorded time of the event before each aggregate's
        first new one (``firsts``: its version), in one query for the batch."""
        wanted = {oid: version - 1 for oid, version in firsts.items() if version > 1}
        found: dict[uuid.UUID, tuple[bytes, datetime | None]] = {}
        if wanted:
            p = self.placeholder
            rows = ", ".join([f"({p}, {p})"] * len(wanted))
            cursor.execute(
                "SELECT originator_id, hash, recorded_at FROM event_audit "
                f"WHERE (originator_id, originator_version) IN (VALUES {rows})",
                [v for oid, n in wanted.items() for v in (self._id(oid), n)],
            )
            for row in cursor.fetchall():
                originator_id = uuid.UUID(str(row["originator_id"]))
                found[originator_id] = (
                    bytes.fromhex(row["hash"]),
                    parse_time(row["recorded_at"]),
                )
        for originator_id, version in wanted.items():
            if originator_id not in found:
                log.error(
                    "the ledger has no row for %s version %d: chaining from the "
                    "start; run `idemsync audit verify`",
                    originator_id,
                    version,
                )
        return found

    def _id(self, originator_id: uuid.UUID) -> uuid.UUID | str:
        return originator_id.hex if self.text_types else originator_id


def stored_id(dialect: str, originator_id: uuid.UUID) -> uuid.UUID | str:
    """An aggregate id as the event, snapshot and ledger tables hold it: a
    ``uuid`` on PostgreSQL, its hex digits on SQLite."""
    return originator_id if dialect == "postgresql" else originator_id.hex


def row_values(entry: LedgerEntry, text_types: bool) -> tuple[Any, ...]:
    """``entry`` as the values of ``LEDGER_COLUMNS``."""
    where = entry.provenance
    return (
        entry.originator_id.hex if text_types else entry.originator_id,
        entry.originator_version,
        entry.notification_id,
        where.aggregate_type,
        where.aggregate_id,
        iso(entry.recorded_at) if text_types else entry.recorded_at,
        where.source,
        where.key,
        where.occurred_at,
        entry.hash.hex(),
        where.namespace,
    )


def stored_provenance(
    topic: str, state: Mapping[str, Any], known: Provenance | None
) -> Provenance:
    """What an event's own stored state says of its provenance (for events
    recorded before the ledger existed); ``known``: what the aggregate's
    earlier events said."""
    kind = KINDS.get(topic.rpartition(".")[0], "unknown")
    source = state.get("source") or (known.source if known else None)
    key = state.get("key") or (known.key if known else None)
    if kind == "delivery":
        return Provenance(kind, f"{source}/{key}", source, key)
    object_id = state.get("object_id") or (known.aggregate_id if known else "")
    return Provenance(
        kind,
        str(object_id),
        state.get("source") or None,
        state.get("key") or None,
        state.get("occurred_at") or None,
        state.get("namespace") or DEFAULT_NAMESPACE,
    )


def _recorded_time(state: Mapping[str, Any]) -> datetime:
    """The event's own timestamp (eventsourcing's JSON form), else now."""
    stamp = state.get("timestamp")
    if isinstance(stamp, dict) and isinstance(stamp.get("_data_"), str):
        return parse_time(stamp["_data_"])
    return datetime.now(UTC)


def enter_existing_events(conn: Connection, batch: int = 1000) -> None:
    """Enter every event already stored into the ledger (migration 0003):
    provenance from the events' stored state, recorded time from their own
    timestamps. The ledger then has no ``namespace`` column (migration 0007
    adds it): every event stored then is in ``DEFAULT_NAMESPACE``, which is
    not hashed. Streams the log in aggregate order, holding one aggregate's
    last entry and one batch of rows at a time."""
    postgres = conn.dialect.name == "postgresql"
    position = "notification_id" if postgres else "rowid"
    events = conn.execute(
        text(
            "SELECT originator_id, originator_version, topic, state, "
            f"{position} AS notification_id FROM idemsync_events "
            "ORDER BY originator_id, originator_version"
        ).execution_options(stream_results=True, yield_per=batch)
    )
    columns = LEDGER_COLUMNS[: LEDGER_COLUMNS.index("namespace")]
    names = ", ".join(f":{name}" for name in columns)
    insert = text(f"INSERT INTO event_audit ({', '.join(columns)}) VALUES ({names})")
    last: LedgerEntry | None = None
    rows: list[dict[str, Any]] = []
    for row in events:
        originator_id = uuid.UUID(str(row.originator_id))
        stored = StoredEvent(
            originator_id, row.originator_version, row.topic, bytes(row.state)
        )
        try:
            state = json.loads(stored.state)
        except ValueError:
            state = {}
        same = last is not None and last.originator_id == originator_id
        known = last.provenance if last is not None and same else None
        where = stored_provenance(stored.topic, state, known)
        previous = (
            {originator_id: (last.hash, last.recorded_at)} if last and same else {}
        )
        (last,) = chain(
            [stored],
            [row.notification_id],
            {(originator_id, stored.originator_version): where},
            previous,
            _recorded_time(state),
        )
        values = row_values(last, not postgres)
        rows.append(dict(zip(columns, values[: len(columns)], strict=True)))
        if len(rows) >= batch:
            conn.execute(insert, rows)
            rows = []
    if rows:
        conn.execute(insert, rows)
