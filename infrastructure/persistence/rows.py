"""The delivery log's rows, shared by every backend."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from domain.delivery import DeliveryRecord, FirstAnswer, Resolution

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
)

RESOLUTION_COLUMNS = ("resolution", "resolution_reason", "resolved_at")


def delivery_row(record: DeliveryRecord) -> tuple[Any, ...]:
    """A record as the values of ``DELIVERY_COLUMNS``."""
    delivery, answer = record.delivery, record.answer
    first = answer.objects[0] if answer.objects else None
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
        delivery.payload,
        json.dumps(dict(delivery.headers), separators=(",", ":")),
    )


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


def parse_answer(row: Mapping[str, Any]) -> FirstAnswer:
    """A row of ``SELECT_ANSWER_SQL`` (times are text on SQLite)."""
    received_at = row["received_at"]
    if not isinstance(received_at, datetime):
        received_at = datetime.fromisoformat(received_at)
    return FirstAnswer(json.loads(row["answer"]), received_at)
