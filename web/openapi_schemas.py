"""The bodies the HTTP API answers, as JSON Schema (OpenAPI 3.1 uses JSON
Schema 2020-12): the ``components.schemas`` of ``web.openapi``.

Objects idemsync builds field by field are closed (``additionalProperties:
false``), so that a field added to an answer without being documented here
fails ``tests/integration/test_openapi.py``. Free-form parts stay open: an
event's ``data``, an object's ``fields``, a delivery's ``headers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from domain.delivery import Outcome
from domain.rules import ORDER_LIFECYCLE
from infrastructure.access import Role

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
COUNT: Schema = {"type": "integer", "minimum": 0}
MOMENT: Schema = {"type": "string", "format": "date-time"}
OBJECT: Schema = {"type": "object"}
OUTCOMES = tuple(outcome.value for outcome in Outcome)
FIRST_OUTCOMES = tuple(o for o in OUTCOMES if o != Outcome.DUPLICATE.value)
"""A delivery's first answer is never ``duplicate``."""


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def one_of(values: Iterable[str]) -> Schema:
    return {"type": "string", "enum": list(values)}


def closed(
    required: Mapping[str, Schema],
    optional: Mapping[str, Schema] | None = None,
    description: str | None = None,
) -> Schema:
    """An object with exactly these properties (the ``required`` ones always)."""
    schema: Schema = {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def page(items: Schema, description: str) -> Schema:
    """A keyset page: follow ``next_cursor`` (null on the last page)."""
    return closed(
        {"items": {"type": "array", "items": items}, "next_cursor": nullable(STRING)},
        description=description + " Pass `next_cursor` as `cursor` for the next "
        "page; it is null on the last one.",
    )


def listing(items: Schema, description: str) -> Schema:
    return closed({"items": {"type": "array", "items": items}}, description=description)


def _answers() -> dict[str, Schema]:
    answer = {
        "source": STRING,
        "key": {**STRING, "description": "the delivery's idempotency key"},
    }
    optional = {
        "aggregate": ref("ObjectRef"),
        "aggregates": {
            "type": "array",
            "items": ref("ObjectRef"),
            "minItems": 2,
            "description": "every object addressed, when there were several",
        },
        "reason": {**STRING, "description": "for stale, rejected, parked, ignored"},
    }
    return {
        "ObjectRef": closed(
            {"type": STRING, "id": STRING, "version": COUNT},
            {"namespace": STRING},
            description="An object addressed: the partner's id, its namespace "
            "(absent from answers given before namespaces) and the "
            "aggregate's version after the decision.",
        ),
        "Answer": closed(
            {"outcome": one_of(OUTCOMES), **answer},
            {**optional, "first": ref("FirstAnswer")},
            "The answer to a delivery (specification §4). `first` holds the "
            "first answer when `outcome` is `duplicate`.",
        ),
        "FirstAnswer": closed(
            {"outcome": one_of(FIRST_OUTCOMES), **answer},
            optional,
            "A delivery's first answer, repeated to its retries.",
        ),
        "Error": closed(
            {"error": STRING, "message": STRING},
            {
                "path": {**STRING, "description": "the field at fault, e.g. $.data"},
                "mapping": {
                    **STRING,
                    "description": "`invalid_payload`: the source's mapping that "
                    "could not read the body (`standard`, `stripe`, `github`, or "
                    "`package.module:function`)",
                },
            },
            "A refusal: `error` is a stable code, `message` is for people.",
        ),
        "ProjectionError": closed(
            {"error": STRING},
            {
                "known": {"type": "array", "items": STRING},
                "status_url": STRING,
            },
            "A refusal of an admin projection operation: `known` lists the "
            "projections (404), `status_url` the running rebuild (409).",
        ),
    }


def _health() -> dict[str, Schema]:
    return {
        "Health": closed({"status": {"const": "ok"}}),
        "Readiness": closed(
            {"status": one_of(["ready", "unavailable"])},
            {"reason": STRING},
            "`reason` says why the store is not ready (503).",
        ),
        "Me": closed({"name": STRING, "role": one_of(role.label for role in Role)}),
    }


def _read_models() -> dict[str, Schema]:
    text, cents = nullable(STRING), nullable({"type": "integer"})
    return {
        "Order": closed(
            {
                "namespace": STRING,
                "order_id": STRING,
                "customer_id": text,
                "status": one_of(ORDER_LIFECYCLE),
                "currency": text,
                "total_cents": cents,
                "paid_cents": cents,
                "refunded_cents": {
                    **cents,
                    "description": "the larger of the refunded total stated "
                    "by `order.refunded` and the sum of the refunds by id; "
                    "null while nothing was refunded",
                },
                "disputed_cents": {
                    "type": "integer",
                    "description": "the sum of the lost disputes",
                },
                "carrier": text,
                "tracking_number": text,
                "version": COUNT,
                "updated_at": MOMENT,
            },
            description="A row of the `orders` read model.",
        ),
        "Customer": closed(
            {
                "namespace": STRING,
                "customer_id": STRING,
                "email": text,
                "name": text,
                "phone": text,
                "address": {
                    "anyOf": [STRING, OBJECT, {"type": "null"}],
                    "description": "text or an object, as the partner sent it",
                },
                "deleted": {"type": "boolean"},
                "version": COUNT,
                "updated_at": MOMENT,
            },
            description="A row of the `customers` read model; a deleted "
            "customer's personal fields are null.",
        ),
        "RevenueRow": closed(
            {
                "namespace": STRING,
                "currency": STRING,
                "paid_cents": {"type": "integer"},
                "refunded_cents": {"type": "integer"},
                "disputed_cents": {
                    "type": "integer",
                    "description": "lost to disputes",
                },
                "net_cents": {
                    "type": "integer",
                    "description": "paid - refunded - disputed",
                },
                "orders_paid": COUNT,
            },
            description="Revenue of one namespace in one currency.",
        ),
        "SourceStatsRow": closed(
            {
                "source": STRING,
                "outcome": one_of(OUTCOMES),
                "count": COUNT,
                "first_seen": MOMENT,
                "last_seen": MOMENT,
            },
            description="First outcomes of one source's deliveries.",
        ),
        "OrdersPage": page(ref("Order"), "Orders by order_id, then namespace."),
        "RevenueList": listing(
            ref("RevenueRow"), "Every namespace and currency, in that order."
        ),
        "SourceStatsList": listing(ref("SourceStatsRow"), "Every source and outcome."),
    }


def _projections() -> dict[str, Schema]:
    job = {
        "name": STRING,
        "state": one_of(["running", "done", "failed"]),
        "verify": {"type": "boolean"},
        "dry_run": {"type": "boolean"},
        "started_at": {"type": "number", "description": "Unix time, seconds"},
        "progress": nullable(ref("RebuildProgress")),
        "report": nullable(ref("RebuildReport")),
        "error": nullable(STRING),
    }
    return {
        "ProjectionStatus": closed(
            {
                "name": STRING,
                "position": COUNT,
                "head": COUNT,
                "lag": COUNT,
                "state": one_of(["running", "retrying", "failed"]),
                "error": nullable(STRING),
                "rebuild": nullable(one_of(["running", "done", "failed"])),
            },
            description="A projection: its position in the log, the head, "
            "and the state of the last rebuild started by this process.",
        ),
        "ProjectionStatusList": closed(
            {"projections": {"type": "array", "items": ref("ProjectionStatus")}}
        ),
        "RebuildProgress": closed(
            {
                "phase": STRING,
                "position": COUNT,
                "head": COUNT,
                "events": COUNT,
                "events_per_second": {"type": "number"},
                "eta_seconds": nullable({"type": "number"}),
            }
        ),
        "TableDiff": closed(
            {
                "table": STRING,
                "differing": COUNT,
                "examples": {"type": "array", "items": OBJECT},
            }
        ),
        "RebuildReport": closed(
            {
                "name": STRING,
                "events": COUNT,
                "seconds": {"type": "number"},
                "events_per_second": {"type": "number"},
                "position": COUNT,
                "swapped": {"type": "boolean"},
                "compared_at": nullable(COUNT),
                "differing_rows": COUNT,
                "differences": nullable({"type": "array", "items": ref("TableDiff")}),
                "note": nullable(STRING),
            }
        ),
        "RebuildJob": closed(job, description="A rebuild started by this process."),
        "RebuildStarted": closed(
            {**job, "status_url": STRING},
            description="A rebuild just started; GET `status_url` for its progress.",
        ),
        "NoRebuild": closed(
            {"name": STRING, "state": {"const": "none"}},
            description="No rebuild of this projection was started by this process.",
        ),
    }


def _audit() -> dict[str, Schema]:
    delivery_ref = closed({"source": STRING, "key": STRING})
    record = {
        "source": STRING,
        "key": STRING,
        "received_at": MOMENT,
        "outcome": one_of(FIRST_OUTCOMES),
        "reason": nullable(STRING),
        "answer": ref("FirstAnswer"),
        "resolution": nullable(one_of(FIRST_OUTCOMES)),
        "attempts": nullable(COUNT),
        "last_seen_at": nullable(MOMENT),
    }
    kept = {
        "aggregate": nullable(ref("ObjectRef")),
        "resolution_reason": nullable(STRING),
        "resolved_at": nullable(MOMENT),
    }
    return {
        "AuditEvent": closed(
            {
                "position": {"type": "integer", "minimum": 1},
                "aggregate": ref("ObjectRef"),
                "type": STRING,
                "occurred_at": nullable(STRING),
                "recorded_at": nullable(MOMENT),
                "delivery": nullable(delivery_ref),
                "data": OBJECT,
                "hash": nullable(STRING),
            },
            description="One stored event: `position` in the global log, "
            "`occurred_at` the partner's time as the delivery stated it, "
            "`recorded_at` when idemsync committed it, `delivery` the "
            "delivery that caused it, `hash` chained per aggregate.",
        ),
        "AuditDelivery": closed(
            record,
            kept,
            "A delivery record. `attempts` and `last_seen_at` count its "
            "retries (may lag); `resolution` is what became of a parked one.",
        ),
        "AuditDeliveryDetail": closed(
            {
                **record,
                "payload": nullable(STRING),
                "payload_encoding": nullable(one_of(["utf-8", "base64"])),
                "headers": nullable({"type": "object", "additionalProperties": STRING}),
                "pruned": {"type": "boolean"},
                "events": {"type": "array", "items": ref("AuditEvent")},
            },
            kept,
            "A delivery with its raw payload and headers and the events it "
            "caused. Once retention pruned its record (`pruned`), it is "
            "answered from its receipt in the log, without payload or headers.",
        ),
        "DeliveriesPage": page(
            ref("AuditDelivery"), "Deliveries by (received_at, source, key)."
        ),
        "AggregateEvents": closed(
            {
                "aggregate": closed(
                    {"type": STRING, "id": STRING, "namespace": STRING}
                ),
                "events": {"type": "array", "items": ref("AuditEvent")},
                "next_cursor": nullable(STRING),
            },
            description="A page of one object's events by version; pass "
            "`next_cursor` as `cursor` for the next (null on the last page).",
        ),
        "ParkedSettled": closed(
            {
                "source": STRING,
                "key": STRING,
                "action": one_of(["release", "discard"]),
                "by": STRING,
                "resolution": one_of(FIRST_OUTCOMES),
                "reason": nullable(STRING),
            },
            description="What became of the parked delivery, and who settled it.",
        ),
        "ObjectChain": closed(
            {
                "aggregate": closed(
                    {"type": STRING, "id": STRING, "namespace": STRING}
                ),
                "intact": {"type": "boolean"},
                "events": COUNT,
                "ledger_rows": COUNT,
                "findings": {
                    "type": "array",
                    "items": closed(
                        {
                            "kind": STRING,
                            "version": nullable({"type": "integer"}),
                            "message": STRING,
                        }
                    ),
                },
            },
            description="Whether one object's events still hash to its ledger "
            "chain, from genesis (`audit verify`'s first pass for one object; "
            "the checkpoints are the whole log's).",
        ),
        "AggregateState": closed(
            {
                "aggregate": ref("ObjectRef"),
                "as_of": nullable(MOMENT),
                "recorded_at": nullable(MOMENT),
                "exists": {"type": "boolean"},
                "status": nullable(STRING),
                "fields": OBJECT,
                "positions": {
                    "type": "object",
                    "additionalProperties": {"type": "array"},
                },
                "parked": {
                    "type": "array",
                    "items": closed({"source": STRING, "key": STRING, "type": STRING}),
                },
            },
            description="An object at a point: its version, when that version "
            "was recorded, its fields and the deliveries parked on it.",
        ),
        "EventLogPage": closed(
            {
                "events": {"type": "array", "items": ref("AuditEvent")},
                "next_after": nullable({"type": "integer", "minimum": 1}),
            },
            description="Events of the global log in order; pass `next_after` "
            "as `after` for the next page (null when this one was not full).",
        ),
    }


def component_schemas() -> dict[str, Schema]:
    return {
        **_answers(),
        **_health(),
        **_read_models(),
        **_projections(),
        **_audit(),
    }
