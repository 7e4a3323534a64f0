"""The OpenAPI 3.1 document of the HTTP API, served open at ``GET /openapi.json``.

``create_app`` builds it once with :func:`build_document` and serves it with
:func:`openapi_json`. Each operation states the role it needs (``security``
and its description); ``tests/integration/test_openapi.py`` checks that every
route is described with its methods and role, and runs Schemathesis against
the real app, so the document stays true.

The bodies are msgspec Structs (``web.bodies``): their JSON Schema, made by
msgspec, is ``components.schemas``; the webhook request body is the
``standard`` mapping's own envelope Structs. Query bounds are the ``Bounds``
the endpoints parse with. Choices: webhook source names are *not* an enum
(the document is open, and would otherwise list every partner idemsync deals
with); an unknown source is a 404. Projection names and aggregate types are
enums: they come from the code, not the configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from infrastructure.access import Role
from infrastructure.mappings.standard import Event
from web.bodies import answers, console
from web.bodies import audit as trail
from web.bodies import projections as rebuilds
from web.bodies import read_models as models
from web.openapi_admin import admin
from web.openapi_console import erasure, pages, parked, replay
from web.openapi_parts import (
    BEARER,
    REF,
    Schema,
    content,
    error,
    in_path,
    json_body,
    one_of,
    operation,
)
from web.openapi_reads import audits, views
from web.openapi_webhooks import webhooks
from web.pages import ASSETS
from web.responses import json_response
from web.state import app_state

BODIES = (
    answers.Answer,
    answers.Error,
    answers.Health,
    answers.Readiness,
    models.Order,
    models.Customer,
    models.OrdersPage,
    models.RevenueList,
    models.SourceStatsList,
    trail.DeliveriesPage,
    trail.AuditDeliveryDetail,
    trail.AggregateEvents,
    trail.AggregateState,
    trail.EventLogPage,
    trail.ObjectChain,
    console.Me,
    console.ParkedSettled,
    console.ReplayReport,
    console.CustomerErased,
    rebuilds.ProjectionStatusList,
    rebuilds.RebuildJob,
    rebuilds.RebuildStarted,
    rebuilds.NoRebuild,
    rebuilds.ProjectionError,
)
"""Every body an operation answers (the Structs they hold come along)."""


def health() -> dict[str, Schema]:
    def check(operation_id: str, summary: str, responses: Schema) -> Schema:
        return {"get": operation(operation_id, summary, "health", responses)}

    return {
        "/healthz": check(
            "healthz",
            "The process answers",
            {"200": json_body("alive", answers.Health)},
        ),
        "/readyz": check(
            "readyz",
            "The store answers and is migrated to the head revision",
            {
                "200": json_body("ready", answers.Readiness),
                "503": json_body("not ready, and why", answers.Readiness),
            },
        ),
        "/openapi.json": check(
            "openapi",
            "This document",
            {"200": json_body("the OpenAPI document", {"type": "object"})},
        ),
    }


def _version() -> str:
    try:
        return metadata.version("idemsync")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def metrics(role: Role | None) -> dict[str, Schema]:
    """``GET /metrics``, open or behind ``role``."""
    exposition = content("every series", "text/plain", {"type": "string"})
    described = operation(
        "metrics",
        "Prometheus metrics (text exposition format)",
        "health",
        {"200": exposition},
        role=role,
        description="Counts and timings, never payloads, keys or secrets. Open "
        "unless `[server] metrics_require_token`.",
    )
    return {"/metrics": {"get": described}}


def dashboard() -> dict[str, Schema]:
    """``GET /dashboard`` and the files it loads, open (they hold no data)."""
    page = content(
        "the page (HTML); it loads `/static/*` and polls `/metrics`, with the "
        "bearer token typed into it when `/metrics` needs one",
        "text/html",
        {"type": "string"},
    )
    files = {
        "description": "the file",
        "content": {
            media_type: {"schema": {"type": "string"}}
            for media_type in sorted({media_type for _, media_type in ASSETS.values()})
        },
    }
    name = in_path("name", "the file's name", one_of(sorted(ASSETS)))
    return {
        "/dashboard": {
            "get": operation(
                "dashboard",
                "A page of live charts drawn from `/metrics`",
                "dashboard",
                {"200": page},
                description="Per source: deliveries/s by outcome, duplicate "
                "ratio, mean retry delay; each projection's lag.",
            )
        },
        "/static/{name}": {
            "get": operation(
                "dashboardFile",
                "A file of an open page: scripts, style sheets, vendored libraries",
                "dashboard",
                {"200": files, "404": error("`not_found`: no such file")},
                parameters=[name],
            )
        },
    }


def schemas() -> tuple[Schema, dict[str, Schema]]:
    """The ``standard`` mapping's envelope, and the components: msgspec's JSON
    Schema of it and of ``BODIES`` (docstrings, as descriptions, on one line)."""
    (envelope, *_), components = msgspec.json.schema_components(
        (Event, *BODIES), ref_template=REF
    )
    for schema in components.values():
        if "description" in schema:
            schema["description"] = " ".join(schema["description"].split())
    return envelope, components


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
    envelope, components = schemas()
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
            **webhooks(envelope),
            **health(),
            **served_metrics,
            **dashboard(),
            **pages(),
            **views(),
            **audits(),
            **admin(projections),
            **parked(),
            **replay(),
            **erasure(),
        },
        "components": {
            "schemas": components,
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
