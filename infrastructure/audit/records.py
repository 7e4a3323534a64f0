"""The delivery log as auditors read it: one record, or pages of them.

A record is shown while retention keeps it; after that, what the event log
keeps of it (the receipt: first answer and resolution, no payload). A
redacted record (``infrastructure.privacy.redaction``) shows no payload and
no headers, but their SHA-256 and when they were erased. Times are ISO 8601
in UTC on both backends.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from domain.namespaces import DEFAULT_NAMESPACE
from domain.receipt import Receipt
from infrastructure.persistence.deliveries import moment
from infrastructure.persistence.ledger import iso, parse_time

COLUMNS = (
    "source, idempotency_key, received_at, outcome, reason, aggregate_type, "
    "aggregate_id, aggregate_version, answer, resolution, resolution_reason, "
    "resolved_at, attempts, last_seen_at"
)


@dataclass(frozen=True)
class DeliveryFilter:
    """``GET /audit/deliveries`` parameters; times are inclusive bounds on
    ``received_at``."""

    source: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    key: str | None = None
    """The idempotency key, exactly."""
    object_id: str | None = None
    """The id of the delivery's (first) object, in any namespace."""
    unresolved: bool = False
    """Only deliveries nothing has resolved yet (with ``outcome=parked``:
    the parked queue)."""
    contains: str | None = None
    """Text the raw payload contains (its UTF-8 bytes; case-sensitive). No
    index serves it: the scan is bounded by the other filters and the page."""


def time_text(value: datetime | str | None) -> str | None:
    return None if value is None else iso(parse_time(value))


def _last_seen(received_at: datetime | str, last_seen_at: datetime | str | None) -> str:
    """When the delivery was last received: NULL means once; a racing first
    copy may have been seen a moment before the one that won."""
    first = parse_time(received_at)
    latest = first if last_seen_at is None else parse_time(last_seen_at)
    return iso(max(first, latest))


def _payload(raw: bytes) -> tuple[str, str]:
    """The raw body as text when it is UTF-8, else base64, and which."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def find(conn: Connection, source: str, key: str) -> Any:
    """The record's row with its payload and headers, or None."""
    return conn.execute(
        text(
            f"SELECT {COLUMNS}, payload, headers, payload_sha256, headers_sha256, "
            "redacted_at FROM deliveries "
            "WHERE source = :source AND idempotency_key = :key"
        ),
        {"source": source, "key": key},
    ).first()


def summary(row: Any) -> dict[str, Any]:
    """A record without its payload (as listed in pages)."""
    received_at = time_text(row.received_at)
    answer = json.loads(row.answer)
    return {
        "source": row.source,
        "key": row.idempotency_key,
        "received_at": received_at,
        "outcome": row.outcome,
        "reason": row.reason,
        "aggregate": None
        if row.aggregate_type is None
        else {
            "type": row.aggregate_type,
            "id": row.aggregate_id,
            "namespace": _namespace(answer),
            "version": row.aggregate_version,
        },
        "answer": answer,
        "resolution": row.resolution,
        "resolution_reason": row.resolution_reason,
        "resolved_at": time_text(row.resolved_at),
        "attempts": row.attempts,
        "last_seen_at": _last_seen(row.received_at, row.last_seen_at),
    }


def _namespace(answer: dict[str, Any]) -> str:
    """The namespace of a record's first object, as its answer names it
    (answers given before namespaces name none: ``DEFAULT_NAMESPACE``)."""
    first = answer.get("aggregate") or {}
    return str(first.get("namespace", DEFAULT_NAMESPACE))


def full(row: Any) -> dict[str, Any]:
    """A record with the raw payload and the stored headers (None once
    redacted, their digests then given)."""
    found = summary(row)
    found.update(
        payload=None,
        payload_encoding=None,
        headers=None,
        pruned=False,
        redacted_at=time_text(row.redacted_at),
        payload_sha256=row.payload_sha256,
        headers_sha256=row.headers_sha256,
    )
    if row.redacted_at is None:
        payload, encoding = _payload(bytes(row.payload))
        found.update(
            payload=payload, payload_encoding=encoding, headers=json.loads(row.headers)
        )
    return found


def pruned(receipt: Receipt) -> dict[str, Any]:
    """What the event log keeps of a delivery whose record was pruned."""
    return {
        "source": receipt.source,
        "key": receipt.key,
        "received_at": time_text(receipt.received_at),
        "outcome": receipt.outcome,
        "reason": receipt.reason,
        "answer": receipt.answer,
        "resolution": receipt.resolution,
        "attempts": None,
        "last_seen_at": None,
        "payload": None,
        "payload_encoding": None,
        "headers": None,
        "pruned": True,
        "redacted_at": None,
        "payload_sha256": None,
        "headers_sha256": None,
    }


def page(
    engine: Engine,
    where: DeliveryFilter,
    after: tuple[str, str, str] | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """A page of records by (received_at, source, key); ``after`` is the
    last one of the previous page (keyset pagination, stable under inserts)."""
    clauses, params = _clauses(engine, where)
    if after is not None:
        clauses.append("(received_at, source, idempotency_key) > (:t, :s, :k)")
        params.update(t=moment(engine, parse_time(after[0])), s=after[1], k=after[2])
    sql = f"SELECT {COLUMNS} FROM deliveries"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY received_at, source, idempotency_key LIMIT :limit"
    params["limit"] = limit + 1
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).all()
    items = [summary(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    after_last = (
        None if last is None else [last["received_at"], last["source"], last["key"]]
    )
    return {"items": items, "next": after_last}


EXACTLY = {
    "source": "source = :source",
    "outcome": "outcome = :outcome",
    "key": "idempotency_key = :key",
    "object_id": "aggregate_id = :object_id",
}
"""The filters a record must equal, and their SQL."""


def _clauses(engine: Engine, where: DeliveryFilter) -> tuple[list[str], dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for name, clause in EXACTLY.items():
        if getattr(where, name) is not None:
            clauses.append(clause)
            params[name] = getattr(where, name)
    if where.since is not None:
        clauses.append("received_at >= :since")
        params["since"] = moment(engine, where.since)
    if where.until is not None:
        clauses.append("received_at <= :until")
        params["until"] = moment(engine, where.until)
    if where.unresolved:
        clauses.append("resolution IS NULL")
    if where.contains is not None:
        found = "instr(payload, :needle)"
        if engine.dialect.name == "postgresql":
            found = "position(CAST(:needle AS bytea) IN payload)"
        clauses.append(f"{found} > 0")
        params["needle"] = where.contains.encode("utf-8")
    return clauses, params
