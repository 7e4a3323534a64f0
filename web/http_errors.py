"""Starlette's own refusals (no route for the path, a method the route does
not take) and its answer to an exception nothing caught, as JSON error
bodies, like every other answer of the API: ``{"error": "not_found" |
"method_not_allowed" | "internal_error", "message": ...}``."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from web.responses import json_response

ERRORS = {404: "not_found", 405: "method_not_allowed"}


async def http_error(request: Request, exc: Exception) -> Response:
    """The exception handler for ``HTTPException``."""
    assert isinstance(exc, HTTPException)
    error = ERRORS.get(exc.status_code, "http_error")
    message = f"{exc.detail}: {request.method} {request.url.path[:200]}"
    return json_response(
        {"error": error, "message": message}, exc.status_code, exc.headers
    )


async def internal_error(request: Request, exc: Exception) -> Response:
    """The handler of an exception no route caught (Starlette's own answer is
    a text/plain 500): logged with its traceback, answered without it."""
    logging.getLogger("idemsync").error(
        "unhandled %s on %s", type(exc).__name__, request.url.path[:200], exc_info=exc
    )
    return json_response(
        {"error": "internal_error", "message": "the server failed; retry"}, 500
    )
