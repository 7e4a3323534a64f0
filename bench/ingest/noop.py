"""The load generator's counterpart: an HTTP server that answers every
request with a fixed 200 without reading it, as fast as it can (the load
generator's own ceiling). ``python -m bench.ingest.noop PORT`` serves it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.server_process import HOST, Process, free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0

NOOP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
)


class NoopProtocol(asyncio.Protocol):
    """Answers every HTTP/1.1 request with a fixed 200, reading just enough
    to find where each request ends."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        answers = 0
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            length = 0
            at = buffer.find(b"content-length:", 0, end)
            if at >= 0:
                stop = buffer.find(b"\r\n", at, end + 2)
                length = int(buffer[at + 15 : stop])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            answers += 1
        self.buffer = buffer
        if answers:
            self.transport.write(NOOP_RESPONSE * answers)


def noop_server(port: int) -> None:
    """The load generator's counterpart: does nothing, as fast as it can."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(NoopProtocol, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextmanager
def noop(directory: Path) -> Iterator[tuple[str, Process]]:
    """The no-op server on a free port, answering (any request answers 200:
    a GET probes it); its ``host:port`` and process."""
    port = free_port()
    # It runs in ``directory``: the repository goes on its module path.
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    process = Process(
        "noop", [sys.executable, "-m", "bench.ingest.noop", str(port)], directory, env
    )
    process.start()
    try:
        process.wait_answering(f"http://{HOST}:{port}/", STARTUP_SECONDS)
        yield f"{HOST}:{port}", process
    finally:
        process.stop(timeout=10)


if __name__ == "__main__":
    noop_server(int(sys.argv[1]))
