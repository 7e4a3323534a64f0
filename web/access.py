"""Roles on routes (specification §8): ``@requires(Role.AUDITOR)`` on an endpoint.

The caller sends ``Authorization: Bearer <token>``. Without a header, with
another scheme or a token not configured: 401 ``unauthorized`` with
``WWW-Authenticate: Bearer``. With a configured token of a lower role: 403
``forbidden``, ``role auditor required``. Otherwise the endpoint runs, with
the caller's :class:`~infrastructure.access.Token` (name and role, no secret)
on ``request.state.token``.

The token is never logged, returned or put in an exception; a refusal is
logged with the path, the reason and, for a 403, the token's configured name.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from infrastructure.access import Access, Role, Token
from web.responses import json_response
from web.state import app_state

__all__ = ["Endpoint", "required_role", "requires"]

log = logging.getLogger("idemsync.access")

Endpoint = Callable[[Request], Awaitable[Response]]
ROLE_ATTRIBUTE = "required_role"
MAX_TOKEN_BYTES = 4096


def _presented(request: Request) -> bytes | str:
    """The bearer token's bytes as sent, or why there is none (a str)."""
    header = request.headers.get("authorization")
    if header is None:
        return "a bearer token is required (Authorization: Bearer <token>)"
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return "the Authorization header must be 'Bearer <token>'"
    # Starlette decodes headers as latin-1: this gives back the bytes sent.
    raw = token.encode("latin-1")
    if len(raw) > MAX_TOKEN_BYTES:
        return "the bearer token is not valid"
    return raw


def _unauthorized(request: Request, message: str) -> Response:
    log.warning(
        "refused request method=%s path=%r status=401 detail=%s",
        request.method,
        request.url.path[:200],
        message,
    )
    body = {"error": "unauthorized", "message": message}
    return json_response(body, 401, {"WWW-Authenticate": "Bearer"})


def authorize(request: Request, role: Role) -> Token | Response:
    """The caller's token if its role is ``role`` or higher, else the 401 or
    403 to answer."""
    access: Access = app_state(request.app).access
    presented = _presented(request)
    if isinstance(presented, str):
        return _unauthorized(request, presented)
    token = access.token_for(presented)
    if token is None:
        return _unauthorized(request, "the bearer token is not valid")
    if token.role < role:
        log.warning(
            "refused request method=%s path=%r status=403 token_name=%s role=%s "
            "required=%s",
            request.method,
            request.url.path[:200],
            token.name,
            token.role.label,
            role.label,
        )
        body = {"error": "forbidden", "message": f"role {role.label} required"}
        return json_response(body, 403)
    return token


def requires(role: Role) -> Callable[[Endpoint], Endpoint]:
    """Guard an async endpoint ``(request) -> Response`` with ``role``::

    @requires(Role.AUDITOR)
    async def delivery(request: Request) -> Response: ...
    """

    def guard(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            allowed = authorize(request, role)
            if isinstance(allowed, Response):
                return allowed
            request.state.token = allowed
            return await endpoint(request)

        setattr(guarded, ROLE_ATTRIBUTE, role)
        return guarded

    return guard


def required_role(endpoint: object) -> Role | None:
    """The role ``requires`` put on ``endpoint``; None for an open one."""
    role = getattr(endpoint, ROLE_ATTRIBUTE, None)
    return role if isinstance(role, Role) else None
