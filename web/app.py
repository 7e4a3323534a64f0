"""The ASGI application, composed from settings: ``create_app(settings)``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from domain.application import SyncService
from infrastructure.intake import Intake
from infrastructure.persistence.database import Database
from infrastructure.settings import Settings, load_settings
from web.health import healthz, readyz
from web.webhooks import receive_webhook

log = logging.getLogger("idemsync")


def create_app(settings: Settings) -> Starlette:
    """Build the store, the service and the routes for ``settings``."""
    database = Database(
        settings.database_url,
        lock_timeout_seconds=settings.lock_timeout_seconds,
        pool_size=settings.pool_size,
    )
    service = SyncService(env=database.eventsourcing_env())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        service.close()
        database.close()

    app = Starlette(
        routes=[
            Route("/webhooks/{source}", receive_webhook, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.intake = Intake(settings, service)
    for source in settings.sources.values():
        if source.scheme == "none":
            log.warning(
                "!!! source %r accepts UNSIGNED webhooks (scheme none): "
                "anyone can write to it. Development only. !!!",
                source.name,
            )
    return app


def create_app_from_env() -> Starlette:
    """uvicorn's factory for each worker process: settings from the environment."""
    return create_app(load_settings())
