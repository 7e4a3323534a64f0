"""The open pages and their files, as the app serves them: ``/dashboard``,
``/console``, ``/docs`` and ``/static/{name}`` (see ``web.static_pages``)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from starlette.routing import Route

from web import console, dashboard
from web.static_pages import static_route

ASSETS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {**dashboard.ASSETS, **console.ASSETS}
)
"""Every file ``/static/{name}`` serves: name to path under ``web/static``
and media type."""


def routes() -> list[Route]:
    return [*dashboard.routes(), *console.routes(), static_route(ASSETS)]
