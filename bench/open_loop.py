"""An open-loop load generator: requests at a constant arrival rate.

``wrk`` is closed-loop: each connection sends its next request when the
last is answered, so a slow server is sent less and the requests it would
have been sent are never timed ("coordinated omission"). A partner's
deliveries arrive when they arrive. This generator starts request ``i`` at
``start + i / rate`` whatever the server is doing, on a keep-alive
connection that is free then (a new one when none is, up to
``--connections``; beyond that the request waits for one), and times it
from its scheduled start, so time spent waiting for a connection counts.

Reads the request files ``bench/ingest/signing.py`` writes for wrk (each record:
its length in decimal, a newline, the raw request) and prints one line,
``BENCHJSON {...}``, with the fields of the wrk script's.

    python bench/open_loop.py --port 8000 --rate 500 --duration 10 a-0.req
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

TIMEOUT_S = 30.0


def read_requests(paths: Sequence[Path]) -> list[bytes]:
    """The records of ``paths``, dealt back into one list (round-robin)."""
    per_file: list[list[bytes]] = []
    for path in paths:
        data, records, at = path.read_bytes(), [], 0
        while at < len(data):
            newline = data.index(b"\n", at)
            length = int(data[at:newline])
            records.append(data[newline + 1 : newline + 1 + length])
            at = newline + 1 + length
        per_file.append(records)
    longest = max((len(r) for r in per_file), default=0)
    return [r[i] for i in range(longest) for r in per_file if i < len(r)]


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]

IDLE_S = 2.0
"""A connection idle longer is closed, not reused: the server may have
closed it (uvicorn's keep-alive timeout is 5 s), and a request sent on it
would fail for no fault of the server's."""


class Generator:
    """Sends ``requests`` at ``rate`` per second for ``duration`` seconds."""

    def __init__(
        self, host: str, port: int, requests: list[bytes], connections: int
    ) -> None:
        self.host, self.port = host, port
        self.requests = requests
        self.limit = connections
        self.idle: list[tuple[Connection, float]] = []
        self.opened = 0
        self.freed = asyncio.Condition()
        self.latencies: list[float] = []
        self.errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}

    async def connection(self) -> Connection:
        async with self.freed:
            while not self.idle and self.opened >= self.limit:
                await self.freed.wait()
            while self.idle:
                connection, since = self.idle.pop()
                if time.monotonic() - since <= IDLE_S:
                    return connection
                connection[1].close()
                self.opened -= 1
            self.opened += 1
        try:
            return await asyncio.open_connection(self.host, self.port)
        except OSError:
            async with self.freed:
                self.opened -= 1
                self.freed.notify()
            raise

    async def release(self, connection: Connection | None) -> None:
        async with self.freed:
            if connection is None:
                self.opened -= 1
            else:
                self.idle.append((connection, time.monotonic()))
            self.freed.notify()

    async def send(self, request: bytes, scheduled: float) -> None:
        try:
            connection = await self.connection()
        except OSError:
            self.errors["connect"] += 1
            return
        try:
            status = await asyncio.wait_for(
                self.exchange(connection, request), TIMEOUT_S
            )
        except TimeoutError:
            self.errors["timeout"] += 1
            connection[1].close()
            await self.release(None)
            return
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.errors["read"] += 1
            connection[1].close()
            await self.release(None)
            return
        self.latencies.append(time.monotonic() - scheduled)
        if status > 399:
            self.errors["status"] += 1
        await self.release(connection)

    @staticmethod
    async def exchange(connection: Connection, request: bytes) -> int:
        """Send ``request``, read the whole response; its status."""
        reader, writer = connection
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        return status

    async def run(self, rate: float, duration: float) -> dict[str, object]:
        count = int(rate * duration)
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for i in range(count):
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            request = self.requests[i % len(self.requests)]
            tasks.append(asyncio.create_task(self.send(request, scheduled)))
        sent_for = time.monotonic() - start
        await asyncio.gather(*tasks)
        for (_, writer), _ in self.idle:
            writer.close()
        ordered = sorted(self.latencies)

        def at(q: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6

        return {
            "requests": len(ordered),
            "duration_us": max(sent_for, duration) * 1e6,
            "errors": self.errors,
            "latency_us": {
                "p50": at(0.5),
                "p90": at(0.9),
                "p99": at(0.99),
                "max": ordered[-1] * 1e6 if ordered else 0.0,
            },
            "wrapped": max(0, count - len(self.requests)),
            "connections_opened": self.opened,
            "scheduled": count,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per s")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=512)
    args = parser.parse_args(argv)
    requests = read_requests(args.files)
    if not requests:
        parser.error("no requests in the files")
    generator = Generator(args.host, args.port, requests, args.connections)
    figures = asyncio.run(generator.run(args.rate, args.duration))
    print("BENCHJSON " + json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
