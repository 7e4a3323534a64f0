"""uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection.

With ``--workers`` above one, uvicorn's workers serve a listening socket
inherited from the supervisor. asyncio turns Nagle off only on sockets that
report ``IPPROTO_TCP``, and an inherited socket reports 0: every response,
written in two parts, then waited for the client's delayed ACK (~40 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    """``H11Protocol`` that sets ``TCP_NODELAY`` on each new connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
