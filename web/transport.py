"""uvicorn's HTTP/1.1 protocols as ``idemsync serve`` runs them.

What the subclasses add to uvicorn's ``HttpToolsProtocol`` (C, llhttp) and
``H11Protocol`` (pure Python, about three times the CPU per request):

- Nagle's algorithm off on every connection. With ``--workers`` above one,
  uvicorn's workers serve a listening socket inherited from the supervisor;
  asyncio turns Nagle off only on sockets that report ``IPPROTO_TCP``, and an
  inherited socket reports 0: every response, written in two parts, then
  waited for the client's delayed ACK (~40 ms).
- The header limits of ``web/limits.py``, counted as the head arrives: a
  request over them is answered 431 and its connection closed before the app
  is called. The bytes of a head not yet complete are bounded by
  ``HeadLimits.wire_bytes`` (httptools: checked after each read, so at most
  one read more is held; h11: its own receive-buffer bound, set to it).
- A deadline for the request line and headers (uvicorn has none): counted
  from the connection's opening, and from each answer on a kept-alive
  connection, it stops when a head is complete. A connection past it is
  closed, after a 408 if it had sent something (an idle kept-alive
  connection is just closed: an unasked-for 408 could cross a request the
  client is sending at that moment, and be read as its answer).
- Every answer the server writes by itself is JSON: the 400 for a request
  line or headers that are not HTTP, the 408, the 431, and the 500 of an app
  that failed before answering. (uvicorn's text 503 "Exceeded concurrency
  limit" needs ``--limit-concurrency``, which ``serve`` does not set: its
  bound is ``[server] max_in_flight``, a JSON 503.)

The limits come from the app: ``create_app`` publishes its
:class:`~web.limits.HeadRules` in the ASGI lifespan state, which uvicorn
hands to each connection's protocol (``app_state``). Each worker process
builds its app from the environment's settings (``create_app_from_env``), so
the protocol classes carry no configuration and pickle by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from web.limits import HeadLimits, HeadRules, too_large

BAD_REQUEST = {
    "error": "bad_request",
    "message": "invalid HTTP request: malformed request line or headers",
}
INTERNAL_ERROR = {"error": "internal_error", "message": "the server failed"}
TARGET_BYTES = 1024
"""How much of a head h11 is refused on is kept to name the path it was for."""


def no_delay(transport: asyncio.BaseTransport) -> None:
    """``TCP_NODELAY`` on ``transport``'s socket, if it is a TCP one."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def raw_answer(
    status: int,
    body: Mapping[str, str],
    default_headers: list[tuple[bytes, bytes]],
) -> bytes:
    """A whole JSON response that closes the connection, as bytes to write
    where no request/response cycle exists (or none can be trusted)."""
    content = msgspec.json.encode(body)
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: %d" % len(content),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + content


def request_path(target: bytes) -> str:
    """The decoded path of a raw request target, as uvicorn puts it in the
    scope (only to name the path of a refused request)."""
    return unquote(target.partition(b"?")[0].decode("latin-1"))


def first_target(head: bytes) -> bytes:
    """The request target of the first line of ``head`` (b"" if none yet)."""
    parts = head.partition(b"\r\n")[0].split(b" ")
    return parts[1] if len(parts) > 2 else b""


def json_server_errors(app: ASGIApp, logger: logging.Logger) -> ASGIApp:
    """``app``, with a JSON 500 sent here when it fails (or returns) before
    starting an answer, where uvicorn would send a text one. uvicorn still
    logs the exception, and closes the connection."""

    async def answered(scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, receive, sending)
        except BaseException:
            if not started:
                await internal_error(send)
            raise
        if not started:
            logger.error("ASGI callable returned without starting response.")
            await internal_error(send)

    return answered


async def internal_error(send: Send) -> None:
    body = msgspec.json.encode(INTERNAL_ERROR)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class HeadersTooLarge(Exception):
    """Raised from a parser callback: the head is over the limits."""

    def __init__(self, reason: str, target: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.target = target


class HeadGuard(asyncio.Protocol):
    """The deadline, the refusals and the JSON answers both protocols share
    (a mixin placed before uvicorn's class). The deadline runs only while the
    server waits for a head: armed when the connection opens and when an
    answer completes with every head received so far answered (pipelined
    heads aside), stopped when a head is complete."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    logger: logging.Logger
    server_state: ServerState
    app: Any

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        # uvicorn's protocol is next in the MRO (typed here as asyncio's).
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        self._guard(app_state)
        self._start_parsing()

    def _start_parsing(self) -> None:
        """The protocol's own per-connection state, set after uvicorn's."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._bad_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]  # uvicorn's
        self._answered()

    def _guard(self, app_state: Mapping[str, Any]) -> None:
        self.rules = HeadRules.published(app_state)
        self.limits: HeadLimits = self.rules.limits
        self.deadline: asyncio.TimerHandle | None = None
        self.heard = False
        """Whether the client sent anything since the deadline was armed."""
        self.heads = 0
        self.answers = 0
        self.app = json_server_errors(self.app, self.logger)

    def _await_head(self) -> None:
        self._stop_deadline()
        self.heard = False
        self.deadline = self.loop.call_later(
            self.limits.header_timeout_seconds, self._head_late
        )

    def _stop_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _heard(self) -> None:
        if self.deadline is not None:
            self.heard = True

    def _head_complete(self) -> None:
        self.heads += 1
        self._stop_deadline()

    def _answered(self) -> None:
        """After uvicorn's ``on_response_complete``."""
        self.answers += 1
        if not self.transport.is_closing() and self.answers == self.heads:
            self._await_head()

    def _head_late(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        if self.heard:
            seconds = self.limits.header_timeout_seconds
            self.logger.warning(
                "Request line and headers not received within %g s.", seconds
            )
            message = f"request line and headers not received within {seconds:g} s"
            body = {"error": "header_timeout", "message": message}
            self._close_with(408, body)
        else:
            self.transport.close()

    def _refuse(self, reason: str, target: bytes) -> None:
        self._close_with(431, too_large(reason))
        self.rules.refused(request_path(target), reason)

    def _bad_request(self) -> None:
        self._close_with(400, BAD_REQUEST)

    def _close_with(self, status: int, body: Mapping[str, str]) -> None:
        self._stop_deadline()
        if not self.transport.is_closing():
            self.transport.write(
                raw_answer(status, body, self.server_state.default_headers)
            )
            self.transport.close()


class LimitedH11Connection(h11.Connection):
    """h11's server side, whose receive buffer (an incomplete head) is bounded
    by the limits' wire bytes, and whose requests are checked against the
    limits as h11 parses them, before uvicorn sees them."""

    def __init__(self, limits: HeadLimits, on_head: Callable[[], None]) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=limits.wire_bytes)
        self.limits = limits
        self.on_head = on_head

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as error:
            if error.error_status_hint == 431:
                raise HeadersTooLarge(self.limits.beyond_wire(), b"") from error
            raise
        if isinstance(event, h11.Request):
            self.on_head()
            reason = self.limits.check(event.headers)
            if reason is not None:
                raise HeadersTooLarge(reason, event.target)
        return event


class GuardedH11Protocol(HeadGuard, H11Protocol):
    """``H11Protocol`` with Nagle off, the header limits and deadline, and
    JSON errors (see the module)."""

    def _start_parsing(self) -> None:
        self.conn = LimitedH11Connection(self.limits, self._head_complete)
        self.head_start = b""
        """The first bytes of the head being received (to name its path)."""

    def _await_head(self) -> None:
        self.head_start = b""
        super()._await_head()

    def data_received(self, data: bytes) -> None:
        self._heard()
        if self.conn.their_state is h11.IDLE and len(self.head_start) < TARGET_BYTES:
            self.head_start += data[: TARGET_BYTES - len(self.head_start)]
        super().data_received(data)

    def handle_events(self) -> None:
        try:
            super().handle_events()
        except HeadersTooLarge as refused:
            target = refused.target or first_target(self.head_start)
            self._refuse(refused.reason, target)


try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: h11 only
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

if HttpToolsProtocol is not None:

    class GuardedHttpToolsProtocol(HeadGuard, HttpToolsProtocol):
        """``HttpToolsProtocol`` with Nagle off, the header limits and
        deadline, and JSON errors (see the module). llhttp hands over each
        header whole (httptools joins its pieces): the count and size are
        checked per header, and the bytes of a head still incomplete after
        each read against the wire bound."""

        def _start_parsing(self) -> None:
            self.url = b""
            self.in_head = True
            """Between requests, or inside a head: not in a request's body."""
            self.head_bytes = 0
            self.ended = 0
            """Requests whose message (head and body) was read whole."""
            self.header_count = 0
            self.header_bytes = 0
            self.refusal: str | None = None

        def data_received(self, data: bytes) -> None:
            """uvicorn's, with the refusals. A read in which a request ended
            and the next began is not counted against the wire bound: how
            much of it is the new head is unknown (the exact per-header
            limits still apply)."""
            self._unset_keepalive_if_required()
            self._heard()
            ended = self.ended
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError:
                if self.refusal is not None:
                    self._refuse(self.refusal, self.url)
                else:
                    self.logger.warning("Invalid HTTP request received.")
                    self._bad_request()
                return
            if self.in_head and self.ended == ended:
                self.head_bytes += len(data)
                if self.head_bytes > self.limits.wire_bytes:
                    self._refuse(self.limits.beyond_wire(), self.url)

        def on_message_begin(self) -> None:
            self.header_count = self.header_bytes = 0
            super().on_message_begin()

        def on_header(self, name: bytes, value: bytes) -> None:
            self.header_count += 1
            self.header_bytes += len(name) + len(value)
            limits = self.limits  # compared inline: this runs for every header
            if (
                self.header_count > limits.max_headers
                or self.header_bytes > limits.max_header_bytes
            ):
                reason = limits.excess(self.header_count, self.header_bytes) or ""
                self.refusal = reason
                raise HeadersTooLarge(reason, self.url)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self.in_head = False
            self._head_complete()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self.in_head = True
            self.head_bytes = 0
            self.ended += 1


PROTOCOLS = ("auto", "httptools", "h11")


def http_protocol(name: str = "auto") -> type[asyncio.Protocol]:
    """The protocol class ``serve`` gives uvicorn: ``auto`` is httptools if
    installed (as uvicorn's ``auto``), else h11. (Module-level classes:
    uvicorn pickles them for its worker processes.)"""
    if name == "h11" or (name == "auto" and HttpToolsProtocol is None):
        return GuardedH11Protocol
    if HttpToolsProtocol is None:
        raise RuntimeError("httptools is not installed")
    return GuardedHttpToolsProtocol
