"""The operator console (``GET /console``), the API reference (``GET /docs``)
and ``GET /auth/me``, which tells a signed-in console who its token is.

Both pages are open and hold no data: the console's script asks the API
for everything with the bearer token its visitor types in (kept in the
tab's ``sessionStorage``, never in a cookie), so every view is exactly what
the token's role may read, and the API alone decides. The script builds
the page from text nodes only: nothing a partner sent is ever parsed as
HTML. ``/docs`` is Swagger UI (vendored, ``web/static/swagger-ui``)
rendering ``/openapi.json``. Their files are served by ``/static/{name}``
(``web.pages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infrastructure.access import Role, Token
from web.access import requires
from web.bodies.console import Me
from web.responses import json_response
from web.static_pages import PAGE_POLICY, framing_self, page

ASSETS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "console.js": ("console.js", "text/javascript"),
        "console.css": ("console.css", "text/css"),
        "docs.js": ("docs.js", "text/javascript"),
        "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css"),
    }
)
"""The console's and the reference's files under ``web/static``."""

DOCS_POLICY = PAGE_POLICY.replace(
    "style-src 'self';", "style-src 'self' 'unsafe-inline';"
)
"""Swagger UI sets inline styles; it still runs only its own files."""


async def console_page(request: Request) -> Response:
    """``GET /console``: the page (``web/static/console.html``); it frames
    ``/dashboard`` for the charts over time."""
    return page("console.html", framing_self(PAGE_POLICY))


async def docs_page(request: Request) -> Response:
    """``GET /docs``: Swagger UI on ``/openapi.json``."""
    return page("docs.html", DOCS_POLICY)


@requires(Role.READER)
async def me(request: Request) -> Response:
    """``GET /auth/me``: the token's configured name and role."""
    token: Token = request.state.token
    return json_response(Me(name=token.name, role=token.role.label))


def routes() -> list[Route]:
    return [
        Route("/console", console_page, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/auth/me", me, methods=["GET"]),
    ]
