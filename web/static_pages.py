"""The open pages' HTML and ``GET /static/{name}``, the files they load.

The pages (``/dashboard``, ``/console``, ``/docs``) and their files hold no
data, so they are served without a token; each page fetches what it shows
from the API with the token its visitor types in. Every file is package
data under ``web/static`` (vendored libraries included: no CDN, no build
step), read once.
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

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
"""A page runs only its own files and talks only to its own server."""


def framed_by_self(policy: str) -> str:
    """``policy``, for a page that the app's own pages may frame (the
    dashboard, inside the console) and no other site."""
    return policy.replace("frame-ancestors 'none'", "frame-ancestors 'self'")


def framing_self(policy: str) -> str:
    """``policy``, for a page that frames the app's own pages."""
    framing = "default-src 'none'; frame-src 'self';"
    return policy.replace("default-src 'none';", framing)


@cache
def read(relative: str) -> bytes:
    return (STATIC / relative).read_bytes()


def page(name: str, policy: str = PAGE_POLICY) -> Response:
    """The HTML file ``web/static/<name>`` with its security headers."""
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    return Response(read(name), media_type="text/html", headers=headers)


def static_route(assets: Mapping[str, tuple[str, str]]) -> Route:
    """``GET /static/{name}``: one of ``assets`` (name to the file under
    ``web/static`` and its media type), else 404."""
    known = MappingProxyType(dict(assets))

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in known:
            raise HTTPException(404, "Not Found")
        relative, media_type = known[name]
        return Response(
            read(relative),
            media_type=media_type,
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    return Route("/static/{name}", static_file, methods=["GET"])
