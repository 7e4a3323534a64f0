"""The OpenAPI 3.1 document of the HTTP API, served open at ``GET /openapi.json``.

``create_app`` builds it once with :func:`build_document` and serves it with
:func:`openapi_json`. Each operation states the role it needs (``security``
and its description); ``tests/integration/test_openapi.py`` checks that every
route is described with its methods and role, and runs Schemathesis against
the real app, so the document stays true.

Choices: webhook source names are *not* an enum (the document is open, and
would otherwise list every partner idemsync deals with); an unknown source is
a 404. Projection names and aggregate types are enums: they come from the
code, not the configuration. The response bodies are in ``web.openapi_schemas``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from domain.application import AGGREGATES
from domain.rules import ORDER_LIFECYCLE
from infrastructure.access import Role
from web.audit import MAX_SEARCH
from web.openapi_schemas import FIRST_OUTCOMES, Schema, component_schemas, ref
from web.pages import ASSETS
from web.params import FALSE, TRUE
from web.parked import MAX_REASON
from web.responses import json_response
from web.state import app_state

NDJSON = "application/x-ndjson"
MAX_POSITION = 2**62
SEGMENT: Schema = {"type": "string", "minLength": 1, "pattern": "^[^/\\x00]+$"}
"""A path segment: Starlette's ``{name}`` matches anything but ``/``."""
NO_NUL = "^[^\\x00]*$"
"""Query text may be anything but NUL (answered 400)."""
BEARER = "bearerAuth"

# --- responses -----------------------------------------------------------


def header(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "schema": schema or {"type": "string"}}


def json_body(
    description: str, schema: Schema, headers: Mapping[str, Schema] | None = None
) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


RETRY_AFTER = {"Retry-After": header("seconds to wait", {"type": "integer"})}


def error(description: str, schema: str = "Error") -> Schema:
    return json_body(description, ref(schema))


def bad_parameter() -> Schema:
    return error(
        "`bad_parameter`: a query parameter is not valid; the message says which"
    )


def unavailable() -> Schema:
    return json_body(
        "`store_unavailable`: the store did not answer; retry after `Retry-After`",
        ref("Error"),
        RETRY_AFTER,
    )


def not_found(what: str) -> Schema:
    return error(f"`not_found`: {what}")


def guarded(role: Role) -> dict[str, Schema]:
    """The refusals of an operation that needs ``role`` (``web.access``)."""
    return {
        "401": json_body(
            "`unauthorized`: no bearer token, a malformed `Authorization` "
            "header, or a token not configured",
            ref("Error"),
            {"WWW-Authenticate": header("`Bearer`")},
        ),
        "403": error(f"`forbidden`: the token's role is lower than `{role.label}`"),
    }


# --- parameters ----------------------------------------------------------


def in_path(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or SEGMENT,
    }


def in_query(name: str, description: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def in_header(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "header",
        "description": description,
        "schema": {"type": "string"},
    }


def text(name: str, description: str) -> Schema:
    return in_query(name, description, {"type": "string", "pattern": NO_NUL})


def enum(name: str, description: str, values: Iterable[str]) -> Schema:
    return in_query(name, description, {"type": "string", "enum": list(values)})


def integer(
    name: str, description: str, low: int, high: int, default: int | None = None
) -> Schema:
    schema: Schema = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return in_query(name, description, schema)


def limit(default: int, maximum: int) -> Schema:
    return integer("limit", "most items in the page", 1, maximum, default)


def cursor() -> Schema:
    return in_query(
        "cursor",
        "the `next_cursor` of the previous page (opaque; any other value is a 400)",
        {"type": "string"},
    )


def moment(name: str, description: str) -> Schema:
    return in_query(
        name,
        description + " (ISO 8601; without a zone, UTC)",
        {"type": "string", "format": "date-time"},
    )


def flag(name: str, description: str) -> Schema:
    return in_query(
        name,
        description + ": `1`, `true`, `yes` or `on` (any case); anything else is no",
        {"type": "string"},
    )


# --- operations ----------------------------------------------------------


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: Mapping[str, Schema],
    *,
    role: Role | None = None,
    description: str = "",
    parameters: Sequence[Schema] = (),
    request_body: Schema | None = None,
) -> Schema:
    """One operation; with a ``role``, its bearer security, the role in its
    description and the 401/403 it answers."""
    access = (
        f"Role `{role.label}` or higher (`Authorization: Bearer <token>`)."
        if role is not None
        else "Open: no token."
    )
    described: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "description": f"{description}\n\n{access}".strip(),
        "tags": [tag],
        "security": [{BEARER: []}] if role is not None else [],
        "responses": {**responses, **(guarded(role) if role is not None else {})},
    }
    if role is not None:
        described["x-role"] = role.label
    if parameters:
        described["parameters"] = list(parameters)
    if request_body is not None:
        described["requestBody"] = request_body
    return described


SIGNATURE_HEADERS = (
    ("webhook-id", "Standard Webhooks: the message id, also the idempotency key"),
    ("webhook-timestamp", "Standard Webhooks: Unix seconds, signed"),
    ("webhook-signature", "Standard Webhooks: `v1,<base64>` signatures"),
    ("svix-id", "Svix: as `webhook-id`"),
    ("svix-timestamp", "Svix: as `webhook-timestamp`"),
    ("svix-signature", "Svix: as `webhook-signature`"),
    ("Stripe-Signature", "Stripe: `t=<unix>,v1=<hex>`"),
    ("X-Hub-Signature-256", "GitHub: `sha256=<hex>`"),
    ("X-GitHub-Delivery", "GitHub: the idempotency key"),
    ("X-Shopify-Hmac-Sha256", "Shopify: base64 HMAC-SHA256 of the body"),
    ("X-Shopify-Webhook-Id", "Shopify: the idempotency key"),
    (
        "Idempotency-Key",
        "schemes `hmac-sha256` and `none`: the idempotency key by default",
    ),
)


def webhooks() -> dict[str, Schema]:
    answered = {
        "Idempotent-Replayed": header(
            "`true` on a `duplicate`", {"type": "string", "enum": ["true"]}
        )
    }
    receive = operation(
        "receiveWebhook",
        "Receive a partner's delivery",
        "webhooks",
        {
            "200": json_body(
                "`applied`, `duplicate` (with `first`), `stale`, `rejected` or "
                "`ignored`: decided and committed",
                ref("Answer"),
                answered,
            ),
            "202": json_body("`parked`: stored until its object exists", ref("Answer")),
            "400": error(
                "`invalid_payload` (`path` names the field and `mapping` the "
                "source's mapping that could not read it; also a body that is "
                "not UTF-8 or repeats a key in an object) or `missing_key`"
            ),
            "401": error(
                "`unauthorized`: signature missing or wrong, or timestamp outside "
                "tolerance (the reason is only logged)"
            ),
            "404": error("`unknown_source`: no source of that name"),
            "408": error(
                "`body_timeout`: the body did not arrive whole within "
                "`[server] body_timeout_seconds`; the connection is closed"
            ),
            "413": error(
                "`payload_too_large`: body over the source's `max_body_bytes`; "
                "the connection is closed"
            ),
            "431": error(
                "`headers_too_large`: more headers than `[server] max_headers`, "
                "or header names and values over `max_header_bytes` bytes; "
                "refused before the body is read, the connection is closed"
            ),
            "503": json_body(
                "`store_unavailable` or `overloaded`: nothing stored; retry after "
                "`Retry-After`",
                ref("Error"),
                RETRY_AFTER,
            ),
        },
        description="The raw body is verified with the source's signature "
        "scheme (the headers below, by scheme; a `hmac-sha256` source names "
        "its own), mapped to commands and decided exactly once per "
        "`(source, idempotency key)`. A 2xx is sent only after the delivery "
        "and its events are committed; anything else stored nothing.",
        parameters=[
            in_path("source", "a configured source name (`[sources.NAME]`)"),
            *(in_header(name, about) for name, about in SIGNATURE_HEADERS),
        ],
        request_body={
            "required": True,
            "description": "The partner's JSON, verified over its raw bytes; "
            "its shape is the source's mapping's (`standard`: "
            '`{"type", "timestamp", "data"}`).',
            "content": {"application/json": {"schema": {}}},
        },
    )
    return {"/webhooks/{source}": {"post": receive}}


def health() -> dict[str, Schema]:
    return {
        "/healthz": {
            "get": operation(
                "healthz",
                "The process answers",
                "health",
                {"200": json_body("alive", ref("Health"))},
            )
        },
        "/readyz": {
            "get": operation(
                "readyz",
                "The store answers and is migrated to the head revision",
                "health",
                {
                    "200": json_body("ready", ref("Readiness")),
                    "503": json_body("not ready, and why", ref("Readiness")),
                },
            )
        },
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                "health",
                {"200": json_body("the OpenAPI document", {"type": "object"})},
            )
        },
    }


IN_NAMESPACE = (
    "the object's namespace; needed when the id is in several (400 otherwise)"
)


def views() -> dict[str, Schema]:
    def view(
        operation_id: str,
        summary: str,
        body: str,
        *,
        missing: str | None = None,
        parameters: Sequence[Schema] = (),
        bad: bool = False,
    ) -> Schema:
        responses = {"200": json_body(summary, ref(body))}
        if bad:
            responses["400"] = bad_parameter()
        if missing:
            responses["404"] = not_found(missing)
        responses["503"] = unavailable()
        return {
            "get": operation(
                operation_id,
                summary,
                "views",
                responses,
                role=Role.READER,
                parameters=parameters,
            )
        }

    return {
        "/views/orders": view(
            "listOrders",
            "Orders, a page at a time",
            "OrdersPage",
            parameters=[
                enum("status", "only orders in this status", ORDER_LIFECYCLE),
                text("customer_id", "only this customer's orders"),
                text("namespace", "only this namespace's orders"),
                limit(50, 500),
                cursor(),
            ],
            bad=True,
        ),
        "/views/orders/{order_id}": view(
            "getOrder",
            "One order",
            "Order",
            missing="no such order",
            parameters=[
                in_path("order_id", "the partner's order id"),
                text("namespace", IN_NAMESPACE),
            ],
            bad=True,
        ),
        "/views/customers/{customer_id}": view(
            "getCustomer",
            "One customer",
            "Customer",
            missing="no such customer",
            parameters=[
                in_path("customer_id", "the partner's customer id"),
                text("namespace", IN_NAMESPACE),
            ],
            bad=True,
        ),
        "/views/revenue": view(
            "listRevenue",
            "Revenue per namespace and currency",
            "RevenueList",
            parameters=[text("namespace", "only this namespace's revenue")],
            bad=True,
        ),
        "/views/sources": view(
            "listSourceStats", "Outcomes per source", "SourceStatsList"
        ),
    }


def admin(projections: Sequence[str]) -> dict[str, Schema]:
    name = in_path(
        "name",
        "a projection",
        {"type": "string", "enum": list(projections)},
    )
    unknown = error("no such projection; `known` lists them", "ProjectionError")
    return {
        "/admin/projections": {
            "get": operation(
                "listProjections",
                "Each projection's position, head, lag and state",
                "admin",
                {
                    "200": json_body("every projection", ref("ProjectionStatusList")),
                    "503": unavailable(),
                },
                role=Role.ADMIN,
            )
        },
        "/admin/projections/{name}/rebuild": {
            "post": operation(
                "startRebuild",
                "Rebuild a projection from the log, in the background",
                "admin",
                {
                    "202": json_body(
                        "started",
                        ref("RebuildStarted"),
                        {"Location": header("the rebuild's status URL")},
                    ),
                    "404": unknown,
                    "409": error(
                        "a rebuild of this projection is running",
                        "ProjectionError",
                    ),
                },
                role=Role.ADMIN,
                description="Replays the whole log into shadow tables, catches "
                "up with live traffic and swaps atomically; reads and ingest go "
                "on. GET the `Location` for progress and the report.",
                parameters=[
                    name,
                    flag(
                        "verify", "compare with the live model and report differences"
                    ),
                    flag("dry_run", "rebuild and compare, but swap nothing"),
                ],
            ),
            "get": operation(
                "getRebuild",
                "The last rebuild of a projection started by this process",
                "admin",
                {
                    "200": json_body(
                        "running, done (with its report) or failed; or none",
                        {"anyOf": [ref("RebuildJob"), ref("NoRebuild")]},
                    ),
                    "404": unknown,
                },
                role=Role.ADMIN,
                parameters=[name],
            ),
        },
    }


def parked() -> dict[str, Schema]:
    """``POST /admin/parked/{source}/{key}/release`` and ``…/discard``."""

    def settle(action: str, summary: str, description: str) -> Schema:
        return {
            "post": operation(
                f"{action}Parked",
                summary,
                "admin",
                {
                    "200": json_body("settled", ref("ParkedSettled")),
                    "400": bad_parameter(),
                    "404": not_found("no route: a key with a line break"),
                    "409": error(
                        "`not_parked`: the delivery is not waiting (never parked, "
                        "or already resolved)"
                        + (
                            "; `not_yet_created`: its object does not exist yet"
                            if action == "release"
                            else ""
                        )
                    ),
                    "503": unavailable(),
                },
                role=Role.ADMIN,
                description=description,
                parameters=[
                    in_path("source", "the source's name"),
                    in_path(
                        "key",
                        "the idempotency key (may contain `/`)",
                        {"type": "string", "minLength": 1},
                    ),
                    {
                        **in_query(
                            "reason",
                            "why (kept in the event, with the token's name)",
                            {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": MAX_REASON,
                                "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$",
                            },
                        ),
                        "required": True,
                    },
                ],
            )
        }

    return {
        "/admin/parked/{source}/{key}/release": settle(
            "release",
            "Decide a parked delivery now, on its object (which must exist)",
            "Recorded as `HandedOn` on the object (who and why), the changes "
            "its commands make, and the delivery's resolution.",
        ),
        "/admin/parked/{source}/{key}/discard": settle(
            "discard",
            "Drop a parked delivery from the queue; it is never applied",
            "Recorded as `Discarded` on the object (who and why) and the "
            "delivery's resolution `ignored`.",
        ),
    }


def audit() -> dict[str, Schema]:
    kind = in_path(
        "type", "the object's type", {"type": "string", "enum": list(AGGREGATES)}
    )
    object_id = in_path("id", "the partner's id of the object")

    def read(
        operation_id: str,
        summary: str,
        ok: Schema,
        parameters: Sequence[Schema],
        *,
        missing: str | None = None,
        bad: bool = True,
        description: str = "",
    ) -> Schema:
        responses = {"200": ok}
        if bad:
            responses["400"] = bad_parameter()
        if missing:
            responses["404"] = not_found(missing)
        responses["503"] = unavailable()
        return {
            "get": operation(
                operation_id,
                summary,
                "audit",
                responses,
                role=Role.AUDITOR,
                description=description,
                parameters=parameters,
            )
        }

    log_page = json_body(
        "a page of the log; with `Accept: application/x-ndjson`, the log "
        "streamed as one AuditEvent per line",
        ref("EventLogPage"),
    )
    log_page["content"][NDJSON] = {"schema": ref("AuditEvent")}
    return {
        "/audit/deliveries": read(
            "listDeliveries",
            "Delivery records, by time received",
            json_body("a page of deliveries", ref("DeliveriesPage")),
            [
                text("source", "only this source's"),
                enum("outcome", "only deliveries first answered so", FIRST_OUTCOMES),
                moment("since", "received at or after"),
                moment("until", "received at or before"),
                text("key", "only the delivery with this idempotency key"),
                text("object", "only deliveries whose (first) object has this id"),
                in_query(
                    "unresolved",
                    "`1`/`true`/`yes`/`on`: only deliveries nothing resolved yet "
                    "(with `outcome=parked`: the parked queue); `0`/`false`/`no`/"
                    "`off` or absent: all",
                    {
                        "type": "string",
                        "enum": [*TRUE, *FALSE, *(v.upper() for v in TRUE + FALSE)],
                    },
                ),
                in_query(
                    "contains",
                    "only deliveries whose raw payload contains this text "
                    "(case-sensitive)",
                    {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_SEARCH,
                        "pattern": NO_NUL,
                    },
                ),
                limit(50, 500),
                cursor(),
            ],
        ),
        "/audit/deliveries/{source}/{key}": read(
            "getDelivery",
            "One delivery and the events it caused",
            json_body("the delivery", ref("AuditDeliveryDetail")),
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
            "listObjectEvents",
            "One object's events, by version",
            json_body("a page of its events", ref("AggregateEvents")),
            [
                kind,
                object_id,
                text("namespace", IN_NAMESPACE),
                limit(100, 1000),
                cursor(),
            ],
            missing="unknown type, or no event of this object",
        ),
        "/audit/aggregates/{type}/{id}/chain": read(
            "getObjectChain",
            "Whether one object's events still hash to its ledger chain",
            json_body("its chain status", ref("ObjectChain")),
            [kind, object_id, text("namespace", IN_NAMESPACE)],
            missing="unknown type, or no event of this object",
        ),
        "/audit/aggregates/{type}/{id}": read(
            "getObjectState",
            "One object now, at a version, or as recorded at a time",
            json_body("its state at that point", ref("AggregateState")),
            [
                kind,
                object_id,
                text("namespace", IN_NAMESPACE),
                integer("version", "the state at this version", 1, MAX_POSITION),
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
            "listEvents",
            "The global event log, in order",
            log_page,
            [
                integer("after", "events after this position", 0, MAX_POSITION, 0),
                integer(
                    "limit",
                    "most events (default 100); with NDJSON optional and up to "
                    f"{MAX_POSITION}",
                    1,
                    1000,
                ),
            ],
            description="With `Accept: application/x-ndjson` the log is "
            "streamed, one event per line, in constant memory.",
        ),
    }


def _version() -> str:
    try:
        return metadata.version("idemsync")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def metrics(role: Role | None) -> dict[str, Schema]:
    """``GET /metrics``, open or behind ``role``."""
    exposition = {
        "description": "every series",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    return {
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics (text exposition format)",
                "health",
                {"200": exposition},
                role=role,
                description="Counts and timings, never payloads, keys or "
                "secrets. Open unless `[server] metrics_require_token`.",
            )
        }
    }


def dashboard() -> dict[str, Schema]:
    """``GET /dashboard`` and the files it loads, open (they hold no data)."""
    media_types = sorted({media_type for _, media_type in ASSETS.values()})
    return {
        "/dashboard": {
            "get": operation(
                "dashboard",
                "A page of live charts drawn from `/metrics`",
                "dashboard",
                {
                    "200": {
                        "description": "the page (HTML); it loads `/static/*` "
                        "and polls `/metrics`, with the bearer token typed into "
                        "it when `/metrics` needs one",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                description="Per source: deliveries/s by outcome, duplicate "
                "ratio, mean retry delay; each projection's lag.",
            )
        },
        "/static/{name}": {
            "get": operation(
                "dashboardFile",
                "A file of an open page: scripts, style sheets, vendored libraries",
                "dashboard",
                {
                    "200": {
                        "description": "the file",
                        "content": {
                            media_type: {"schema": {"type": "string"}}
                            for media_type in media_types
                        },
                    },
                    "404": not_found("no such file"),
                },
                parameters=[
                    in_path(
                        "name",
                        "the file's name",
                        {"type": "string", "enum": sorted(ASSETS)},
                    )
                ],
            )
        },
    }


def html(operation_id: str, summary: str, description: str) -> Schema:
    """An open page: HTML that holds no data (it asks the API for it)."""
    page = {
        "description": "the page (HTML)",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    return operation(
        operation_id, summary, "pages", {"200": page}, description=description
    )


def console() -> dict[str, Schema]:
    """``GET /console``, ``GET /docs`` (open) and ``GET /auth/me``."""
    return {
        "/console": {
            "get": html(
                "console",
                "The operator console",
                "Sign in with a bearer token (kept in the tab only); each view "
                "reads the API with it, so it shows what the token's role may "
                "read.",
            )
        },
        "/docs": {
            "get": html(
                "docs", "This API's reference (Swagger UI on `/openapi.json`)", ""
            )
        },
        "/auth/me": {
            "get": operation(
                "whoAmI",
                "The token's configured name and role",
                "pages",
                {"200": json_body("who the token is", ref("Me"))},
                role=Role.READER,
            )
        },
    }


def build_document(
    *,
    projections: Sequence[str],
    metrics_require_token: bool | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """The whole document. ``projections``: the names the admin endpoints
    accept; ``metrics_require_token``: whether ``/metrics`` needs the role
    reader (None: it is not served); ``version``: idemsync's (its installed
    version by default)."""
    served_metrics = (
        {}
        if metrics_require_token is None
        else metrics(Role.READER if metrics_require_token else None)
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idemsync",
            "version": version or _version(),
            "description": "Webhook sync engine: every delivery counts exactly "
            "once. Roles are ordered: `reader` < `auditor` < `admin`; each "
            "operation says the least it needs.",
        },
        "tags": [
            {"name": "webhooks", "description": "partners' deliveries, signed"},
            {"name": "health", "description": "open"},
            {"name": "dashboard", "description": "the dashboard page, open"},
            {"name": "pages", "description": "the console and this reference"},
            {"name": "views", "description": "read models, role reader"},
            {"name": "audit", "description": "history, role auditor"},
            {"name": "admin", "description": "projections, role admin"},
        ],
        "paths": {
            **webhooks(),
            **health(),
            **served_metrics,
            **dashboard(),
            **console(),
            **views(),
            **audit(),
            **admin(projections),
            **parked(),
        },
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token made by `idemsync tokens add NAME "
                    "--role ROLE`; the configuration keeps only its SHA-256.",
                }
            },
        },
    }


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``: the document built at start."""
    document: Mapping[str, Any] = app_state(request.app).openapi
    return json_response(document)
