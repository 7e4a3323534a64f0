"""``GET /metrics``: the Prometheus text of specification §9.

Open by default, like most exporters (it carries counts, never payloads,
keys or secrets); ``[server] metrics_require_token = true`` puts it behind
the role ``reader``.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infrastructure.access import Role
from web.access import requires
from web.state import app_state


async def exposition(request: Request) -> Response:
    """Every series, with the store's gauges read now."""
    state = app_state(request.app)
    body = await run_in_threadpool(state.metrics.exposition, state.store_gauges)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_route(require_token: bool) -> Route:
    """``GET /metrics``, behind the role reader when ``require_token``."""
    endpoint = requires(Role.READER)(exposition) if require_token else exposition
    return Route("/metrics", endpoint, methods=["GET"])
