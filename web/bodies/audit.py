"""What ``GET /audit/...`` answers: ``infrastructure.audit.trail.AuditTrail``
builds these as dicts (the CLI prints them too);
``tests/integration/test_openapi.py`` checks them against these."""

from __future__ import annotations

from typing import Any, Literal

from msgspec import UNSET, UnsetType

from web.bodies.answers import FirstAnswer, ObjectRef
from web.bodies.base import Body, Count, FirstOutcome, Free, Moment, Position


class DeliveryRef(Body, kw_only=True):
    """The delivery that caused an event."""

    source: str
    key: str


class AuditEvent(Body, kw_only=True):
    """One stored event: `position` in the global log, `occurred_at` the
    partner's time as the delivery stated it, `recorded_at` when idemsync
    committed it, `delivery` the delivery that caused it, `hash` chained per
    aggregate."""

    position: Position
    aggregate: ObjectRef
    type: str
    occurred_at: str | None
    recorded_at: Moment | None
    delivery: DeliveryRef | None
    data: Free
    hash: str | None


class AuditDelivery(Body, kw_only=True):
    """A delivery record. `attempts` and `last_seen_at` count its retries
    (may lag); `resolution` is what became of a parked one."""

    source: str
    key: str
    received_at: Moment
    outcome: FirstOutcome
    reason: str | None
    answer: FirstAnswer
    resolution: FirstOutcome | None
    attempts: Count | None
    last_seen_at: Moment | None
    aggregate: ObjectRef | UnsetType | None = UNSET
    resolution_reason: str | UnsetType | None = UNSET
    resolved_at: Moment | UnsetType | None = UNSET


class AuditDeliveryDetail(AuditDelivery, kw_only=True):
    """A delivery with its raw payload and headers and the events it caused.
    Once retention pruned its record (`pruned`), it is answered from its
    receipt in the log, without payload or headers. Once a data subject's
    erasure redacted it (`redacted_at`), payload and headers are null and
    `payload_sha256` and `headers_sha256` are the hex SHA-256 of the payload
    and of the headers' JSON text as they were stored (null otherwise)."""

    payload: str | None
    payload_encoding: Literal["utf-8", "base64"] | None
    headers: dict[str, str] | None
    pruned: bool
    redacted_at: Moment | None
    payload_sha256: str | None
    headers_sha256: str | None
    events: list[AuditEvent]


class DeliveriesPage(Body, kw_only=True):
    """Deliveries by (received_at, source, key). Pass `next_cursor` as
    `cursor` for the next page; it is null on the last one."""

    items: list[AuditDelivery]
    next_cursor: str | None


class AggregateName(Body, kw_only=True):
    """An object named, without a version."""

    type: str
    id: str
    namespace: str


class AggregateEvents(Body, kw_only=True):
    """A page of one object's events by version; pass `next_cursor` as
    `cursor` for the next (null on the last page)."""

    aggregate: AggregateName
    events: list[AuditEvent]
    next_cursor: str | None


class ParkedDelivery(Body, kw_only=True):
    """A delivery parked on the object, and the type of its event."""

    source: str
    key: str
    type: str


class AggregateState(Body, kw_only=True):
    """An object at a point: its version, when that version was recorded,
    its fields and the deliveries parked on it."""

    aggregate: ObjectRef
    as_of: Moment | None
    recorded_at: Moment | None
    exists: bool
    status: str | None
    fields: Free
    positions: dict[str, list[Any]]
    parked: list[ParkedDelivery]


class EventLogPage(Body, kw_only=True):
    """Events of the global log in order; pass `next_after` as `after` for
    the next page (null when this one was not full)."""

    events: list[AuditEvent]
    next_after: Position | None


class ChainFinding(Body, kw_only=True):
    """An event changed, inserted or deleted behind idemsync's back."""

    kind: str
    version: int | None
    message: str


class ObjectChain(Body, kw_only=True):
    """Whether one object's events still hash to its ledger chain, from
    genesis (`audit verify`'s first pass for one object; the checkpoints are
    the whole log's)."""

    aggregate: AggregateName
    intact: bool
    events: Count
    ledger_rows: Count
    findings: list[ChainFinding]
