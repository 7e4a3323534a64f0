"""``GET /dashboard``: live charts of ``/metrics``, and ``GET /static/{name}``,
the files the page loads (its script and style sheet, and uPlot, vendored in
``web/static/uplot``: no CDN, no build step).

Both are open: the page and its files hold no data. The page fetches
``/metrics`` itself, with the bearer token its visitor types in when
``[server] metrics_require_token`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STATIC = Path(__file__).parent / "static"

ASSETS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "dashboard.js": ("dashboard.js", "text/javascript"),
        "dashboard.css": ("dashboard.css", "text/css"),
        "uPlot.iife.min.js": ("uplot/uPlot.iife.min.js", "text/javascript"),
        "uPlot.min.css": ("uplot/uPlot.min.css", "text/css"),
    }
)
"""``/static/{name}``: the file under ``web/static`` and its media type."""

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
"""The page runs only its own files and talks only to its own server."""


@cache
def _read(relative: str) -> bytes:
    return (STATIC / relative).read_bytes()


async def dashboard_page(request: Request) -> Response:
    """``GET /dashboard``: the page (``web/static/dashboard.html``)."""
    return Response(
        _read("dashboard.html"), media_type="text/html", headers=SECURITY_HEADERS
    )


async def static_file(request: Request) -> Response:
    """``GET /static/{name}``: one of ``ASSETS``, else 404."""
    name = request.path_params["name"]
    if name not in ASSETS:
        raise HTTPException(404, "Not Found")
    relative, media_type = ASSETS[name]
    return Response(
        _read(relative),
        media_type=media_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def routes() -> list[Route]:
    return [
        Route("/dashboard", dashboard_page, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
    ]
