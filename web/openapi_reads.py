"""The reads of the OpenAPI document: the read-model views and the audit
trail. Their bounds and value sets are the ones the endpoints use
(``web.views``, ``web.audit``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from domain.application import AGGREGATES
from domain.delivery import FIRST_OUTCOMES
from domain.rules import ORDER_LIFECYCLE
from infrastructure.access import Role
from web import audit
from web.bodies import audit as trail
from web.bodies import read_models as models
from web.openapi_parts import (
    TEXT,
    Schema,
    in_path,
    integer,
    json_body,
    moment,
    one_of,
    operation,
    page,
    query,
    reading,
    ref,
    switch,
)
from web.views import ORDERS_LIMIT

NDJSON = "application/x-ndjson"
IN_NAMESPACE = (
    "the object's namespace; needed when the id is in several (400 otherwise)"
)


def read(
    role: Role,
    operation_id: str,
    summary: str,
    ok: Schema,
    parameters: Sequence[Schema] = (),
    *,
    missing: str = "",
    bad: bool = True,
    description: str = "",
) -> Schema:
    """``GET`` of a read from the store: ``ok``, or one of its refusals."""
    tag = {Role.READER: "views", Role.AUDITOR: "audit"}[role]
    responses = {"200": ok, **reading(bad=bad, missing=missing)}
    return {
        "get": operation(
            operation_id,
            summary,
            tag,
            responses,
            role=role,
            description=description,
            parameters=parameters,
        )
    }


def views() -> dict[str, Schema]:
    def one(what: str) -> list[Schema]:
        return [
            in_path(f"{what}_id", f"the partner's {what} id"),
            query("namespace", IN_NAMESPACE),
        ]

    def view(
        operation_id: str,
        summary: str,
        body: type,
        *parameters: Schema,
        missing: str = "",
    ) -> Schema:
        ok = json_body(summary, body)
        return read(Role.READER, operation_id, summary, ok, parameters, missing=missing)

    return {
        "/views/orders": view(
            "listOrders",
            "Orders, a page at a time",
            models.OrdersPage,
            query("status", "only orders in this status", one_of(ORDER_LIFECYCLE)),
            query("customer_id", "only this customer's orders"),
            query("namespace", "only this namespace's orders"),
            *page(ORDERS_LIMIT),
        ),
        "/views/orders/{order_id}": view(
            "getOrder",
            "One order",
            models.Order,
            *one("order"),
            missing="no such order",
        ),
        "/views/customers/{customer_id}": view(
            "getCustomer",
            "One customer",
            models.Customer,
            *one("customer"),
            missing="no such customer",
        ),
        "/views/revenue": view(
            "listRevenue",
            "Revenue per namespace and currency",
            models.RevenueList,
            query("namespace", "only this namespace's revenue"),
        ),
        "/views/sources": read(
            Role.READER,
            "listSourceStats",
            "Outcomes per source",
            json_body("Outcomes per source", models.SourceStatsList),
            bad=False,
        ),
    }


def audits() -> dict[str, Schema]:
    kind = in_path("type", "the object's type", one_of(AGGREGATES))
    of_object = [
        kind,
        in_path("id", "the partner's id of the object"),
        query("namespace", IN_NAMESPACE),
    ]
    log_page = json_body(
        "a page of the log; with `Accept: application/x-ndjson`, the log "
        "streamed as one AuditEvent per line",
        trail.EventLogPage,
    )
    log_page["content"][NDJSON] = {"schema": ref(trail.AuditEvent)}
    limit = audit.EVENTS_LIMIT
    return {
        "/audit/deliveries": read(
            Role.AUDITOR,
            "listDeliveries",
            "Delivery records, by time received",
            json_body("a page of deliveries", trail.DeliveriesPage),
            [
                query("source", "only this source's"),
                query(
                    "outcome",
                    "only deliveries first answered so",
                    one_of(FIRST_OUTCOMES),
                ),
                moment("since", "received at or after"),
                moment("until", "received at or before"),
                query("key", "only the delivery with this idempotency key"),
                query("object", "only deliveries whose (first) object has this id"),
                query(
                    "contains",
                    "only deliveries whose raw payload contains this text "
                    "(case-sensitive)",
                    {**TEXT, "minLength": 1, "maxLength": audit.MAX_SEARCH},
                ),
                switch(
                    "unresolved",
                    "only deliveries nothing resolved yet (with `outcome=parked`: "
                    "the parked queue)",
                ),
                *page(audit.DELIVERIES_LIMIT),
            ],
        ),
        "/audit/deliveries/{source}/{key}": read(
            Role.AUDITOR,
            "getDelivery",
            "One delivery and the events it caused",
            json_body("the delivery", trail.AuditDeliveryDetail),
            [
                in_path("source", "the source's name"),
                in_path(
                    "key",
                    "the idempotency key (may contain `/`)",
                    {"type": "string", "minLength": 1},
                ),
            ],
            missing="no such delivery",
            bad=False,
        ),
        "/audit/aggregates/{type}/{id}/events": read(
            Role.AUDITOR,
            "listObjectEvents",
            "One object's events, by version",
            json_body("a page of its events", trail.AggregateEvents),
            [*of_object, *page(limit)],
            missing="unknown type, or no event of this object",
        ),
        "/audit/aggregates/{type}/{id}/chain": read(
            Role.AUDITOR,
            "getObjectChain",
            "Whether one object's events still hash to its ledger chain",
            json_body("its chain status", trail.ObjectChain),
            of_object,
            missing="unknown type, or no event of this object",
        ),
        "/audit/aggregates/{type}/{id}": read(
            Role.AUDITOR,
            "getObjectState",
            "One object now, at a version, or as recorded at a time",
            json_body("its state at that point", trail.AggregateState),
            [
                *of_object,
                integer("version", "the state at this version", audit.VERSION),
                moment(
                    "as_of",
                    "the state after every event recorded at or before this time",
                ),
            ],
            missing="unknown type, or the object did not exist at that point",
            description="Give `version` or `as_of`, not both (400). `as_of` "
            "reads idemsync's recorded clock, not the partner's `occurred_at`.",
        ),
        "/audit/events": read(
            Role.AUDITOR,
            "listEvents",
            "The global event log, in order",
            log_page,
            [
                integer("after", "events after this position", audit.AFTER),
                integer(
                    "limit",
                    f"most events (default {limit.default}); with NDJSON optional "
                    f"and up to {audit.STREAMED_LIMIT.high}",
                    replace(limit, default=None),
                ),
            ],
            description="With `Accept: application/x-ndjson` the log is "
            "streamed, one event per line, in constant memory.",
        ),
    }
