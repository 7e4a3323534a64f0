"""The 307 that drops (or adds) a trailing ``/``, with a relative ``Location``.

Starlette's own (``Router.redirect_slashes``) makes the ``Location`` an
absolute URL built from the request's ``Host`` header: a request sent with
``Host: evil.example`` is redirected there, and a cache in front may keep
that answer for everyone. This one answers the same 307 (empty body) to the
same path, as a path: ``Location: /views/orders?limit=5``, never a host.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send

PATH_SAFE = "/:@!$&'()*+,;="
"""What stays as it is in the path of the ``Location``; anything else
(``%``, ``?``, ``#``, ``\\``, spaces, non-ASCII) is percent-encoded."""
QUERY_SAFE = ":/%?=@[]!$&'()*+,;"
"""The query string is sent on as it came, already percent-encoded by the
client; only what is not allowed in a header value is encoded."""


class RelativeSlashRedirect:
    """The router's ``default`` app (what runs when no route matched): a
    relative 307 when the path with its trailing ``/`` dropped (or one
    added) matches a route, as Starlette's ``redirect_slashes`` does; else
    the router's 404."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        location = self.location(scope) if scope["type"] == "http" else None
        if location is None:
            await self.router.not_found(scope, receive, send)
            return
        await Response(status_code=307, headers={"location": location})(
            scope, receive, send
        )

    def location(self, scope: Scope) -> str | None:
        path: str = scope["path"]
        if path == scope.get("root_path", "") + "/":
            return None  # the root has no other form
        other = path.rstrip("/") if path.endswith("/") else path + "/"
        if not other:
            return None
        moved = {**scope, "path": other}
        if not any(
            route.matches(moved)[0] is not Match.NONE for route in self.router.routes
        ):
            return None
        location = quote(other, safe=PATH_SAFE)
        if location.startswith("//"):
            return None  # a browser reads "//host/..." as another host
        query: bytes = scope.get("query_string", b"")
        if query:
            location += "?" + quote(query, safe=QUERY_SAFE)
        return location
