"""The delivery log's rows, shared by every backend: ``deliveries`` (one
per source and key, pruned after ``retention_days``) and
``delivery_fingerprints`` (one per source and fingerprint, for deliveries
whose key is not signed; kept for ever, like receipts)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from domain.delivery import Ask, DeliveryRecord, FirstAnswer, Resolution
from infrastructure.persistence.ledger import parse_time

DELIVERY_COLUMNS = (
    "source",
    "idempotency_key",
    "received_at",
    "outcome",
    "reason",
    "aggregate_type",
    "aggregate_id",
    "aggregate_version",
    "answer",
    "payload",
    "headers",
    "payload_sha256",
    "headers_sha256",
    "redacted_at",
)

PINNED_NAMESPACES = "SELECT source, namespace FROM source_namespaces"
"""The sources that wrote before namespaces, with the namespace they keep
(migration 0007)."""
KNOWN_NAMESPACES = "SELECT name FROM namespaces"
"""Every namespace a server was started with, and ``default``."""


Row = tuple[Any, ...]


class Cursor(Protocol):
    """What the writers below need of a DB-API cursor (psycopg's, sqlite3's)."""

    def executemany(self, query: Any, params_seq: Iterable[Any], /) -> Any: ...


def as_is(row: Sequence[Any]) -> Row:
    return tuple(row)


def write_deliveries(
    cursor: Cursor,
    placeholder: str,
    records: Sequence[DeliveryRecord],
    convert: Callable[[Sequence[Any]], Row] = as_is,
) -> None:
    """Insert the records and their fingerprints; ``convert`` adapts each
    row's values to the backend (SQLite stores times as text)."""
    if not records:
        return
    cursor.executemany(
        insert_deliveries_sql(placeholder),
        [convert(delivery_row(record)) for record in records],
    )
    fingerprints = [convert(row) for row in fingerprint_rows(records)]
    if fingerprints:
        cursor.executemany(insert_fingerprints_sql(placeholder), fingerprints)


def write_resolutions(
    cursor: Cursor,
    placeholder: str,
    resolutions: Sequence[Resolution],
    convert: Callable[[Sequence[Any]], Row] = as_is,
) -> None:
    """Mark the deliveries the resolutions name as resolved."""
    if resolutions:
        cursor.executemany(
            update_resolutions_sql(placeholder),
            [convert(row) for row in resolution_rows(resolutions)],
        )


def delivery_row(record: DeliveryRecord) -> tuple[Any, ...]:
    """A record as the values of ``DELIVERY_COLUMNS``."""
    delivery, answer = record.delivery, record.answer
    first = answer.objects[0] if answer.objects else None
    headers = json.dumps(dict(delivery.headers), separators=(",", ":"))
    return (
        delivery.source,
        delivery.key,
        delivery.received_at,
        answer.outcome.value,
        answer.reason,
        first.type if first else None,
        first.id if first else None,
        first.version if first else None,
        json.dumps(answer.to_json(), separators=(",", ":")),
        *_kept(delivery.payload, headers, delivery.received_at, record.redacted),
    )


def _kept(
    payload: bytes, headers: str, at: datetime, redacted: bool
) -> tuple[Any, ...]:
    """The payload, headers, their digests and when they were redacted, as
    stored: a delivery about an erased data subject keeps only the digests."""
    if not redacted:
        return payload, headers, None, None, None
    kept = redacted_columns(payload, headers)
    return (*(kept[name] for name in REDACTED_COLUMNS), at)


REDACTED_COLUMNS = ("payload", "headers", "payload_sha256", "headers_sha256")


def redacted_columns(payload: bytes, headers: str) -> dict[str, Any]:
    """What a redacted record keeps of its raw payload and its stored
    headers (the JSON text): their SHA-256 in hex; both are emptied (a new
    record about an erased subject, or ``infrastructure.privacy.redaction``)."""
    return {
        "payload": b"",
        "headers": "{}",
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "headers_sha256": hashlib.sha256(headers.encode()).hexdigest(),
    }


FINGERPRINT_COLUMNS = ("source", "digest", "idempotency_key", "received_at", "answer")


def fingerprint_rows(records: Sequence[DeliveryRecord]) -> list[tuple[Any, ...]]:
    """The values of ``FINGERPRINT_COLUMNS`` of the records that have one."""
    return [
        (
            record.delivery.source,
            record.delivery.fingerprint,
            record.delivery.key,
            record.delivery.received_at,
            json.dumps(record.answer.to_json(), separators=(",", ":")),
        )
        for record in records
        if record.delivery.fingerprint is not None
    ]


def insert_fingerprints_sql(placeholder: str) -> str:
    marks = ", ".join([placeholder] * len(FINGERPRINT_COLUMNS))
    columns = ", ".join(FINGERPRINT_COLUMNS)
    return f"INSERT INTO delivery_fingerprints ({columns}) VALUES ({marks})"


def resolution_rows(
    resolutions: Sequence[Resolution], now: datetime | None = None
) -> list[tuple[Any, ...]]:
    """Parameters of ``UPDATE deliveries SET resolution... WHERE source, key``."""
    at = now or datetime.now(UTC)
    return [(r.outcome.value, r.reason, at, r.source, r.key) for r in resolutions]


def insert_deliveries_sql(placeholder: str) -> str:
    marks = ", ".join([placeholder] * len(DELIVERY_COLUMNS))
    return f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) VALUES ({marks})"


def update_resolutions_sql(placeholder: str) -> str:
    p = placeholder
    return (
        f"UPDATE deliveries SET resolution = {p}, resolution_reason = {p}, "
        f"resolved_at = {p} WHERE source = {p} AND idempotency_key = {p}"
    )


SELECT_ANSWER_SQL = (
    "SELECT answer, received_at FROM deliveries "
    "WHERE source = {p} AND idempotency_key = {p}"
)
SELECT_ANSWER_OR_FINGERPRINT_SQL = (
    "SELECT 0 AS found_by, answer, received_at FROM deliveries "
    "WHERE source = {p} AND idempotency_key = {p} "
    "UNION ALL "
    "SELECT 1 AS found_by, answer, received_at FROM delivery_fingerprints "
    "WHERE source = {p} AND digest = {p} "
    "ORDER BY found_by LIMIT 1"
)


def answer_query(
    placeholder: str, source: str, key: str, fingerprint: str | None
) -> tuple[str, tuple[str, ...]]:
    """The statement and parameters that find a first answer: by key, and
    when the delivery has a fingerprint, by fingerprint too (the key's
    first), in one round trip."""
    if fingerprint is None:
        return SELECT_ANSWER_SQL.format(p=placeholder), (source, key)
    statement = SELECT_ANSWER_OR_FINGERPRINT_SQL.format(p=placeholder)
    return statement, (source, key, source, fingerprint)


def answers_query(
    placeholder: str, asks: Sequence[Ask]
) -> tuple[str, list[int | str | None]]:
    """The statement and parameters that find the first answers of several
    deliveries in one round trip: rows ``(i, found_by, answer, received_at)``,
    ``i`` the index in ``asks``, ``found_by`` 0 for the key, 1 for the
    fingerprint (which only counts when the key found nothing)."""
    p = placeholder
    values = ", ".join([f"({p}, {p}, {p}, {p})"] * len(asks))
    statement = (
        f"WITH asked(i, source, idempotency_key, digest) AS (VALUES {values}) "
        "SELECT asked.i, 0 AS found_by, d.answer, d.received_at "
        "FROM asked JOIN deliveries d ON d.source = asked.source "
        "AND d.idempotency_key = asked.idempotency_key "
        "UNION ALL "
        "SELECT asked.i, 1 AS found_by, f.answer, f.received_at "
        "FROM asked JOIN delivery_fingerprints f ON f.source = asked.source "
        "AND f.digest = asked.digest"
    )
    params = [
        value
        for i, ask in enumerate(asks)
        for value in (i, ask.source, ask.key, ask.fingerprint)
    ]
    return statement, params


def first_answers(
    rows: Sequence[Mapping[str, Any]], count: int
) -> list[FirstAnswer | None]:
    """The rows of ``answers_query`` as one first answer (or None) per ask."""
    found: list[tuple[int, Mapping[str, Any]] | None] = [None] * count
    for row in rows:
        known = found[row["i"]]
        if known is None or row["found_by"] < known[0]:
            found[row["i"]] = (row["found_by"], row)
    return [None if hit is None else parse_answer(hit[1]) for hit in found]


def parse_answer(row: Mapping[str, Any]) -> FirstAnswer:
    """A row of ``SELECT_ANSWER_SQL`` (times are text on SQLite)."""
    return FirstAnswer(json.loads(row["answer"]), parse_time(row["received_at"]))
