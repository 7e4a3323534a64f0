"""The ASGI application, composed from settings: ``create_app(settings)``."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from infrastructure.access import Access
from infrastructure.audit.checkpoints import PeriodicCheckpoint
from infrastructure.bootstrap import bootstrap
from infrastructure.metrics import Metrics, StoreGauges
from infrastructure.persistence.deliveries import parked_backlog
from infrastructure.retention import PeriodicPrune
from infrastructure.settings import Settings, load_settings
from infrastructure.sightings import PeriodicFlush
from projections.catalog import runner_for
from web import admin, audit, erasure, pages, parked, replay, views
from web.admission import Admission
from web.health import healthz, readyz
from web.http_errors import http_error, internal_error
from web.limits import (
    HEAD_RULES,
    HeaderLimitsMiddleware,
    HeadLimits,
    HeadRules,
    refusal_counter,
)
from web.metrics import metrics_route
from web.openapi import build_document, openapi_json
from web.slashes import RelativeSlashRedirect
from web.state import AppState
from web.webhooks import receive_webhook

log = logging.getLogger("idemsync")


def create_app(
    settings: Settings,
    *,
    prune_interval_seconds: float = 3600.0,
    sightings_flush_seconds: float = 1.0,
    checkpoint_interval_seconds: float = 10.0,
) -> Starlette:
    """Build the store, the service and the routes for ``settings``; delivery
    records past retention are pruned every ``prune_interval_seconds``, and
    duplicate sightings written every ``sightings_flush_seconds`` (and at
    shutdown), and the audit ledger checkpointed every
    ``checkpoint_interval_seconds``."""
    metrics = Metrics(settings.sources)
    services = bootstrap(
        settings, group_commit=True, sightings=True, on_conflict=metrics.conflict
    )
    database, service, pipeline = services.database, services.service, services.intake
    committing = services.group_commit
    assert committing is not None and pipeline.sightings is not None
    runner = runner_for(service, database.engine(), settings)
    pruning = PeriodicPrune(database.engine(), settings.sources, prune_interval_seconds)
    flushing = PeriodicFlush(pipeline.sightings, sightings_flush_seconds)
    checkpointing = PeriodicCheckpoint(database.engine(), checkpoint_interval_seconds)
    stop = threading.Event()
    projecting = threading.Thread(
        target=runner.run, args=(stop,), name="projections", daemon=True
    )

    head_rules = HeadRules(HeadLimits.of(settings), refusal_counter(metrics))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, HeadRules]]:
        committing.start()
        if settings.projections.in_serve:
            projecting.start()
        pruning.start()
        flushing.start()
        checkpointing.start()
        yield {HEAD_RULES: head_rules}  # for the server's protocol: web/limits.py
        committing.close()
        checkpointing.stop()
        flushing.stop()
        pruning.stop()
        stop.set()
        if projecting.is_alive():
            projecting.join(timeout=10)
        services.close()

    app = Starlette(
        routes=[
            Route("/webhooks/{source}", receive_webhook, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            metrics_route(settings.server.metrics_require_token),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            *pages.routes(),
            *views.routes(),
            *admin.routes(),
            *parked.routes(),
            *erasure.routes(),
            *replay.routes(),
            *audit.routes(),
        ],
        lifespan=lifespan,
        middleware=[
            Middleware(
                HeaderLimitsMiddleware,
                limits=head_rules.limits,
                refused=head_rules.refused,
            )
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    app.router.redirect_slashes = False
    app.router.default = RelativeSlashRedirect(app.router)
    for source in pipeline.sources.values():
        metrics.describe(
            source.name,
            source.settings.scheme,
            source.settings.mapping,
            source.namespace,
        )
    database.remember_namespaces(
        source.namespace for source in pipeline.sources.values()
    )
    app.state.idemsync = AppState(
        settings=settings,
        services=services,
        database=database,
        access=Access(settings.tokens),
        admission=Admission(settings.server.max_in_flight),
        sightings=pipeline.sightings,
        runner=runner,
        metrics=metrics,
        store_gauges=StoreGauges(
            runner.status, lambda: parked_backlog(database.engine()), settings.sources
        ),
        openapi=build_document(
            projections=tuple(runner.projections),
            metrics_require_token=settings.server.metrics_require_token,
        ),
    )
    for configured in settings.sources.values():
        if configured.scheme == "none":
            log.warning(
                "!!! source %r accepts UNSIGNED webhooks (scheme none): "
                "anyone can write to it. Development only. !!!",
                configured.name,
            )
    return app


def create_app_from_env() -> Starlette:
    """uvicorn's factory for each worker process: settings from the environment."""
    return create_app(load_settings())
