"""Bounds on a request's head: how many headers, how many bytes of header
names and values, and how long the request line and headers may take to
arrive (``[server] max_headers``, ``max_header_bytes``,
``header_timeout_seconds``).

A request over a bound is refused with 431 ``headers_too_large`` before any
work: no body read, no signature checked, nothing stored. Two layers enforce
the size and count:

- the HTTP protocol of ``idemsync serve`` (``web/transport.py``), as the
  bytes arrive, so that a 1 MB header is never held whole; it is also what
  closes a connection whose head is late;
- :class:`HeaderLimitsMiddleware` in the app, so that the limits hold under
  any ASGI server (and in the test client).

The app hands its bounds to the protocol through the ASGI lifespan state
(:data:`HEAD_RULES`), which uvicorn gives each connection's protocol as
``app_state``: every worker process builds its app from its own settings and
publishes them there at startup, so nothing is pickled or read twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from infrastructure.logs import FIELDS
from infrastructure.metrics import Metrics
from infrastructure.settings import Settings
from web.responses import json_response

log = logging.getLogger("idemsync.webhooks")

HEADERS_TOO_LARGE = "headers_too_large"
HEAD_RULES = "idemsync.head_rules"
"""The lifespan state key under which the app publishes its :class:`HeadRules`."""
WEBHOOKS = "/webhooks/"
REQUEST_LINE_BYTES = 8192
"""The request line a head may carry besides its headers (nginx's default
buffer for one: ``large_client_header_buffers 4 8k``)."""
FRAMING_BYTES = 4
"""Each header line's ``": "`` and CRLF, on the wire but not in the count."""

Refused = Callable[[str, str], None]
"""Counts and logs a request refused for its headers: ``(path, reason)``."""


@dataclass(frozen=True)
class HeadLimits:
    """The bounds of a request's head; the defaults are ``[server]``'s."""

    max_header_bytes: int = 16384
    max_headers: int = 100
    header_timeout_seconds: float = 10.0

    @classmethod
    def of(cls, settings: Settings) -> HeadLimits:
        return cls(
            settings.server.max_header_bytes,
            settings.server.max_headers,
            settings.server.header_timeout_seconds,
        )

    @property
    def wire_bytes(self) -> int:
        """The most bytes a request line and headers within the limits take
        on the wire: past this a head is refused before it is parsed whole."""
        return (
            REQUEST_LINE_BYTES
            + self.max_header_bytes
            + FRAMING_BYTES * self.max_headers
            + 2
        )

    def excess(self, count: int, size: int) -> str | None:
        """Why ``count`` headers of ``size`` bytes (names and values) are
        refused, or None when they are within the limits."""
        if count > self.max_headers:
            return f"more than {self.max_headers} headers"
        if size > self.max_header_bytes:
            return f"header names and values over {self.max_header_bytes} bytes"
        return None

    def check(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """:meth:`excess` of a whole list of headers."""
        count = size = 0
        for name, value in headers:
            count += 1
            size += len(name) + len(value)
        return self.excess(count, size)

    def beyond_wire(self) -> str:
        return f"request line and headers over {self.wire_bytes} bytes"


def too_large(reason: str) -> dict[str, str]:
    """The body of a 431."""
    return {"error": HEADERS_TOO_LARGE, "message": reason}


def refusal_counter(metrics: Metrics) -> Refused:
    """Log each request refused for its headers, and count it in
    ``idemsync_requests_refused_total`` when it was sent to a webhook path
    (``source`` is ``_unknown`` unless the name is a configured source)."""

    def refused(path: str, reason: str) -> None:
        source = path[len(WEBHOOKS) :] if path.startswith(WEBHOOKS) else None
        if source is not None:
            metrics.refusal(source, HEADERS_TOO_LARGE)
        log.warning(
            "refused request path=%r status=431 error=%s detail=%s",
            path[:100],
            HEADERS_TOO_LARGE,
            reason,
            extra={
                FIELDS: {
                    "source": metrics.source(source or ""),
                    "status": 431,
                    "error": HEADERS_TOO_LARGE,
                }
            },
        )

    return refused


def ignore(path: str, reason: str) -> None:
    """The :data:`Refused` of a server whose app published no rules."""


@dataclass(frozen=True)
class HeadRules:
    """What the app asks of the HTTP server's connections: its limits, and
    whom to tell about a refusal."""

    limits: HeadLimits = field(default_factory=HeadLimits)
    refused: Refused = field(default=ignore)

    @classmethod
    def published(cls, app_state: Mapping[str, Any]) -> HeadRules:
        """The rules in uvicorn's ``app_state`` (the lifespan state), or the
        defaults when the app published none (``--lifespan off``)."""
        rules = app_state.get(HEAD_RULES)
        return rules if isinstance(rules, HeadRules) else cls()


CLOSE = {"Connection": "close"}


class HeaderLimitsMiddleware:
    """The ASGI check: a request over the header limits is answered 431 (and
    its connection closed) before the app sees it."""

    def __init__(self, app: ASGIApp, limits: HeadLimits, refused: Refused) -> None:
        self.app = app
        self.limits = limits
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            reason = self.limits.check(scope["headers"])
            if reason is not None:
                self.refused(scope["path"], reason)
                answer = json_response(too_large(reason), 431, CLOSE)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
