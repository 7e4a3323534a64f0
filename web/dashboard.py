"""``GET /dashboard``: live charts of ``/metrics``, drawn with uPlot
(vendored in ``web/static/uplot``).

The page is open: it holds no data. It fetches ``/metrics`` itself, with the
bearer token its visitor types in when ``[server] metrics_require_token``
is set. Its files are served by ``/static/{name}`` (``web.static_pages``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from web.static_pages import PAGE_POLICY, framed_by_self, page

ASSETS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "dashboard.js": ("dashboard.js", "text/javascript"),
        "dashboard.css": ("dashboard.css", "text/css"),
        "uPlot.iife.min.js": ("uplot/uPlot.iife.min.js", "text/javascript"),
        "uPlot.min.css": ("uplot/uPlot.min.css", "text/css"),
    }
)
"""The dashboard's files under ``web/static`` and their media types."""


async def dashboard_page(request: Request) -> Response:
    """``GET /dashboard``: the page (``web/static/dashboard.html``); the
    console frames it (``?embedded=1``) in its Sources view."""
    return page("dashboard.html", framed_by_self(PAGE_POLICY))


def routes() -> list[Route]:
    return [Route("/dashboard", dashboard_page, methods=["GET"])]
