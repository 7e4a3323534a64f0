"""uvicorn's HTTP/1.1 protocols with Nagle's algorithm off on every connection.

With ``--workers`` above one, uvicorn's workers serve a listening socket
inherited from the supervisor. asyncio turns Nagle off only on sockets that
report ``IPPROTO_TCP``, and an inherited socket reports 0: every response,
written in two parts, then waited for the client's delayed ACK (~40 ms).

``serve`` uses httptools (C, llhttp) where it is installed, as uvicorn's
``auto`` would, else h11 (pure Python, about three times the CPU per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


def no_delay(transport: asyncio.BaseTransport) -> None:
    """``TCP_NODELAY`` on ``transport``'s socket, if it is a TCP one."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayH11Protocol(H11Protocol):
    """``H11Protocol`` that sets ``TCP_NODELAY`` on each new connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        no_delay(transport)
        super().connection_made(transport)


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is not installed: h11 only
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

if HttpToolsProtocol is not None:

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):
        """``HttpToolsProtocol`` that sets ``TCP_NODELAY`` on each connection."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            no_delay(transport)
            super().connection_made(transport)


def http_protocol() -> type[asyncio.Protocol]:
    """The protocol class ``serve`` gives uvicorn: httptools if installed.
    (Module-level classes: uvicorn pickles them for its worker processes.)"""
    if HttpToolsProtocol is None:
        return NoDelayH11Protocol
    return NoDelayHttpToolsProtocol
