"""``/healthz`` (the process answers) and ``/readyz`` (the store is reachable
and migrated). Both open, no token: an answer says what is wrong in words
that tell a stranger nothing (``store unreachable``, ``schema not at head
revision: ...``); the store's address and the driver's error go to the
server log only."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from infrastructure.persistence.database import Database, NotReady
from web.bodies.answers import Health, Readiness
from web.responses import json_response
from web.state import app_state

log = logging.getLogger("idemsync.health")


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))


async def readyz(request: Request) -> Response:
    database: Database = app_state(request.app).database
    try:
        await run_in_threadpool(database.check_ready)
    except NotReady as problem:
        log.warning("not ready: %s", problem)
        return json_response(
            Readiness(status="unavailable", reason=problem.reason), 503
        )
    return json_response(Readiness(status="ready"))
