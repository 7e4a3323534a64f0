"""``/healthz`` (the process answers) and ``/readyz`` (the store is reachable
and migrated). Both open, no token."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from infrastructure.persistence.database import Database, NotReady
from web.responses import json_response


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    database: Database = request.app.state.database
    try:
        await run_in_threadpool(database.check_ready)
    except NotReady as problem:
        return json_response({"status": "unavailable", "reason": str(problem)}, 503)
    return json_response({"status": "ready"})
