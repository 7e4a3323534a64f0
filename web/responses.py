"""JSON responses encoded with msgspec, and the 503 that asks for a retry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response


def json_response(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def retry_later(request: Request, body: Mapping[str, Any]) -> Response:
    """503 with ``Retry-After`` (``[server] retry_after_seconds``): nothing was
    stored or read, try again."""
    seconds = str(request.app.state.settings.retry_after_seconds)
    return json_response(body, 503, {"Retry-After": seconds})
