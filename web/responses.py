"""JSON responses encoded with msgspec, the 503 that asks for a retry, and
the answer of a read from the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from web.bodies.answers import Error
from web.params import BadParameter
from web.state import app_state


def json_response(
    body: Mapping[str, Any] | msgspec.Struct,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def retry_later(request: Request, body: Mapping[str, Any] | Error) -> Response:
    """503 with ``Retry-After`` (``[server] retry_after_seconds``): nothing was
    stored or read, try again."""
    seconds = str(app_state(request.app).settings.server.retry_after_seconds)
    return json_response(body, 503, {"Retry-After": seconds})


def store_unavailable(request: Request) -> Response:
    """The 503 of a read the store did not answer."""
    down = Error(error="store_unavailable", message="the store is unavailable")
    return retry_later(request, down)


async def answer_read(
    request: Request,
    read: Callable[[], Any],
    missing: str = "",
    not_found: tuple[type[Exception], ...] = (),
) -> Response:
    """Run ``read`` in a worker thread and answer what it returns as JSON:
    None or one of ``not_found`` is a 404 (saying ``missing``, or the
    exception), a ``BadParameter`` a 400, a store that does not answer a 503
    with ``Retry-After``."""
    try:
        body = await run_in_threadpool(read)
    except BadParameter as bad:
        return json_response(Error(error="bad_parameter", message=str(bad)), 400)
    except not_found as unknown:
        return json_response(Error(error="not_found", message=str(unknown)), 404)
    except DBAPIError:
        return store_unavailable(request)
    if body is None:
        return json_response(Error(error="not_found", message=missing), 404)
    return json_response(body)
