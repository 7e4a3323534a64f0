"""Ingest benchmark: idemsync's HTTP ingest next to the database's own ceiling.

For each backend (a SQLite file in a temporary directory; a scratch
PostgreSQL database, created and dropped here) it starts a real
``idemsync serve`` (PostgreSQL: ``--pg-workers`` uvicorn workers; SQLite:
one) on a free port and drives it over a socket with ``wrk`` (a compiled
client, one thread), from files of pre-signed requests (Standard Webhooks
signatures, signed before any timing; the bench source's
``tolerance_seconds`` is an hour, the most a source may have: a batch is
signed just before the runs that send it, well within that). A Lua
script (``wrk.lua``, generated) loads each wrk thread's file in ``init`` and
hands out one raw request per ``request()`` call; ``done()`` prints the
figures as JSON. It measures:

* unique deliveries: each an ``order.created`` of a new order, so one delivery
  writes its ``deliveries`` row and three events (``Order.Tracked``,
  ``Order.Created``, ``Receipt.Issued``) with their ``event_audit`` rows; at
  each ``--connections`` count (closed loop: each connection sends its next
  request when the answer is in); the best is the maximum throughput;
* p99 latency at 80 % of that maximum, open loop: fresh deliveries arriving
  at a constant rate (``bench/open_loop.py``: each request starts when it is
  due, whatever the server is doing, and is timed from then, so a slow
  answer delays no later request's clock), as a partner's deliveries arrive;
* duplicates: already-applied deliveries sent again (re-signed with a later
  timestamp, as a retry is), at each connection count;
* the load generator's own ceiling: the same wrk and Lua script with the
  same request files against a no-op HTTP server (``noop-server`` below: a
  bare asyncio protocol), and against idemsync's ``GET /healthz`` (the HTTP
  stack alone); and wrk's CPU time per request, so its share of each
  idemsync figure is known;
* the ceiling: raw psycopg transactions doing exactly what one unique
  delivery writes (the rows read back from the server's own database: the
  ``deliveries`` row, the events through ``unnest(stored_event_uuid[])`` and
  their ledger rows, after ``SET LOCAL lock_timeout``, ``LOCK TABLE
  idemsync_events IN EXCLUSIVE MODE`` and ``NOTIFY``, as the recorder does),
  one delivery per transaction, from 1, 4, 8 and 16 processes (pipelined);
  and the same without the table lock (what PostgreSQL itself can do with
  those writes); the best run of either is the ceiling;
  and raw sqlite3 likewise, one writer;
* the server's memory: RSS summed over its process tree (``/proc``), idle
  and at its peak under load; CPU of the server, of PostgreSQL and of wrk
  during each run (what limited it).

``--stored-events N`` (PostgreSQL): after the empty-store figures, fill the
store to N events (``prefill``: waves of new orders through
``SyncService.decide``/``commit``, 500 deliveries per commit, from
``--prefill-processes`` processes), restart the server and measure unique
ingest again at the maximum's connections (target: within 10 %).

A table goes to stdout and the figures to ``bench/results/ingest-latest.json``
(``bench/run.py`` merges them with the rebuild and audit figures).

    python -m bench.ingest [--backends sqlite,postgres] [--duration 10]
                           [--connections 1,4,16,64] [--raw-levels 1,4,8,16]
                           [--stored-events N] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg.types.composite import CompositeInfo, register_composite
from sqlalchemy import text

from bench import bulk_store
from bench.rebuild import (
    DEFAULT_PG,
    customer_upsert,
    order_stream,
    postgres_database,
    sqlite_database,
)
from infrastructure.persistence.database import Database
from infrastructure.persistence.ledger import LEDGER_COLUMNS, LedgerWriter, iso
from infrastructure.persistence.rows import DELIVERY_COLUMNS, insert_deliveries_sql
from infrastructure.schemes.standard_webhooks import sign
from projections.catalog import all_projections

RESULTS = Path(__file__).resolve().parent / "results" / "ingest-latest.json"
ROOT = Path(__file__).resolve().parents[1]
SOURCE = "bench"
SECRET = "whsec_aWRlbXN5bmMtYmVuY2gtc2VjcmV0LWtleQ=="
"""A fixed, public key: the bench signs with it, its server checks with it."""
TOLERANCE_SECONDS = 3600
TEMPLATES = 64
"""Unique deliveries read back from the server's database for the ceiling."""
OPEN_LOOP_LIMIT = 512
"""Most connections the open-loop generator opens; beyond them a request
waits for a free one (its wait is timed)."""

TARGETS = {
    "unique_vs_ceiling": 0.5,
    "duplicate_vs_unique": 5.0,
    "p99_at_80_ms": 50.0,
    "stored_vs_empty": 0.9,
}
CONFIG = """\
[database]
lock_timeout_seconds = 5.0

[projections]
in_serve = {in_serve}

[sources.{source}]
scheme = "standard-webhooks"
secrets = ["env:IDEMSYNC_BENCH_SECRET"]
tolerance_seconds = {tolerance}
mapping = "standard"
"""
NOOP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
)
EVENTS_SQL = (
    "INSERT INTO idemsync_events AS t "
    "(originator_id, originator_version, topic, state) "
    "SELECT originator_id, originator_version, topic, state "
    "FROM unnest(%s::stored_event_uuid[]) "
    "RETURNING notification_id, originator_id, originator_version"
)
"""eventsourcing's insert, with the recorder's extra RETURNING columns."""
SQLITE_EVENTS_SQL = (
    "INSERT INTO idemsync_events "
    "(originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)"
)


# --------------------------------------------------------------------------
# Figures


@dataclass
class Usage:
    """CPU (in CPUs: 1.0 = one core busy) of each process group over a run,
    the machine's busy share, and the server tree's RSS."""

    cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0
    rss_peak_mb: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "cpu_cores": {k: round(v, 2) for k, v in self.cpu.items()},
            "machine_busy_fraction": round(self.machine_busy, 3),
            "server_rss_peak_mb": round(self.rss_peak_mb, 1),
        }

    def describe(self) -> str:
        parts = [f"{name} {value:.2f}" for name, value in self.cpu.items()]
        return " ".join(parts) + f" | busy {self.machine_busy:.0%}"


@dataclass
class Run:
    """One measured load: a count over a duration, and its latencies."""

    name: str
    backend: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p90_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    usage: Usage | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "backend": self.backend,
            "connections": self.connections,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "errors": self.errors,
        }
        if self.usage is not None:
            out["usage"] = self.usage.to_json()
        out.update(self.extra)
        return out


@dataclass
class Backend:
    """One backend's figures."""

    backend: str
    workers: int = 1
    ceiling: list[Run] = field(default_factory=list)
    ceiling_no_lock: list[Run] = field(default_factory=list)
    ceiling_pgbench: list[Run] = field(default_factory=list)
    healthz: list[Run] = field(default_factory=list)
    unique: list[Run] = field(default_factory=list)
    at_80: Run | None = None
    duplicate: list[Run] = field(default_factory=list)
    stored: Run | None = None
    stored_events: int = 0
    prefill: dict[str, Any] = field(default_factory=dict)
    rss_idle_mb: float = 0.0
    store: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @staticmethod
    def best(runs: Sequence[Run]) -> Run | None:
        return max(runs, key=lambda r: r.per_second) if runs else None

    @property
    def rss_peak_mb(self) -> float:
        runs = [*self.unique, *self.duplicate, self.at_80, *self.healthz]
        return max((r.usage.rss_peak_mb for r in runs if r and r.usage), default=0.0)

    def to_json(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"backend": self.backend, "skipped": self.skipped}

        def best(runs: Sequence[Run]) -> dict[str, Any] | None:
            found = Backend.best(runs)
            return None if found is None else found.to_json()

        return {
            "backend": self.backend,
            "server_workers": self.workers,
            "ceiling": {
                "runs": [r.to_json() for r in self.ceiling],
                "best": best(self.ceiling),
            },
            "ceiling_no_table_lock": {
                "runs": [r.to_json() for r in self.ceiling_no_lock],
                "best": best(self.ceiling_no_lock),
            },
            "ceiling_pgbench": {
                "runs": [r.to_json() for r in self.ceiling_pgbench],
                "best": best(self.ceiling_pgbench),
            },
            "healthz": [r.to_json() for r in self.healthz],
            "unique": {
                "runs": [r.to_json() for r in self.unique],
                "best": best(self.unique),
            },
            "unique_at_80_percent": None
            if self.at_80 is None
            else self.at_80.to_json(),
            "duplicate": {
                "runs": [r.to_json() for r in self.duplicate],
                "best": best(self.duplicate),
            },
            "stored_events": self.stored_events,
            "prefill": self.prefill,
            "unique_with_stored_events": None
            if self.stored is None
            else self.stored.to_json(),
            "server_rss_mb": {
                "idle": round(self.rss_idle_mb, 1),
                "peak": round(self.rss_peak_mb, 1),
            },
            "store": self.store,
        }


# --------------------------------------------------------------------------
# /proc: CPU and memory of process groups


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        fields = _stat(pid)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def postgres_pids(url: str) -> list[int]:
    """PostgreSQL's processes working for the database of ``url``: its
    backends and the server's own (WAL writer, checkpointer, ...), not the
    backends of other databases (on a shared machine)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() "
                "OR backend_type <> 'client backend'"
            ).fetchall()
    except psycopg.Error:
        return []  # a figure of the sampler, never a failed benchmark
    return [int(row[0]) for row in rows]


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    times = {}
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return times


def rss_mb(pids: Sequence[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total * PAGE_SIZE / 2**20


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot."""
    values = [
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


class Sampler:
    """CPU of each group between ``start`` and ``stop``; peak RSS of the
    ``server`` group, sampled every 0.2 s meanwhile. Each group's processes
    are looked up again every second, and the last CPU time seen of one that
    ends before ``stop`` (a pgbench backend, an autovacuum worker) still
    counts."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.peak = 0.0
        self.seen: dict[str, dict[int, float]] = {name: {} for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        server = self.groups.get("server")
        ticks = 0
        while not self._stop.wait(0.2):
            if server is not None:
                self.peak = max(self.peak, rss_mb(server()))
            ticks += 1
            if ticks % 5 == 0:
                self._look()

    def _look(self) -> None:
        for name, pids in self.groups.items():
            self.seen[name].update(cpu_seconds(pids()))

    def __enter__(self) -> Sampler:
        self.began = time.monotonic()
        self.ticks = machine_ticks()
        self.before = {name: cpu_seconds(pids()) for name, pids in self.groups.items()}
        if "server" in self.groups:
            self.peak = rss_mb(self.groups["server"]())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.monotonic() - self.began
        busy, total = machine_ticks()
        self.busy = (busy - self.ticks[0]) / max(1, total - self.ticks[1])
        self._look()
        self.after = self.seen

    def usage(self, more: dict[str, float] | None = None) -> Usage:
        """Each group's CPU, ``more`` (CPU seconds of processes that have
        exited, e.g. wrk), and ``other``: whatever else kept the machine busy
        (other programs on a shared machine)."""
        seconds = {}
        for name, after in self.after.items():
            before = self.before[name]
            seconds[name] = sum(t - before.get(pid, 0.0) for pid, t in after.items())
        seconds.update(more or {})
        wall = max(self.seconds, 1e-9)
        cpu = {name: used / wall for name, used in seconds.items()}
        cpus = os.cpu_count() or 1
        cpu["other"] = max(0.0, self.busy * cpus - sum(cpu.values()))
        return Usage(cpu, self.busy, self.peak)


# --------------------------------------------------------------------------
# Pre-signed requests


def unique_body(tag: str, index: int) -> bytes:
    """An ``order.created`` of a new order (and a customer per four orders)."""
    return json.dumps(
        {
            "type": "order.created",
            "timestamp": "2026-11-02T09:00:00+00:00",
            "data": {
                "order_id": f"ord_{tag}_{index:07d}",
                "customer_id": f"cus_{tag}_{index // 4:07d}",
                "currency": "EUR",
                "total_cents": 4200 + index % 1000,
                "sequence": 1,
            },
        },
        separators=(",", ":"),
    ).encode()


def raw_request(host: str, key: str, body: bytes, timestamp: int) -> bytes:
    """The whole HTTP/1.1 request a Standard Webhooks sender sends."""
    head = (
        f"POST /webhooks/{SOURCE} HTTP/1.1\r\n"
        f"host: {host}\r\n"
        "content-type: application/json\r\n"
        f"webhook-id: {key}\r\n"
        f"webhook-timestamp: {timestamp}\r\n"
        f"webhook-signature: {sign(SECRET, key, timestamp, body)}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Batch:
    """Pre-signed requests, one file per wrk thread."""

    tag: str
    count: int
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def pattern(self) -> str:
        """The files' path with ``%d`` for the wrk thread."""
        return str(self.files[0])[: -len("-0.req")] + "-%d.req"


def write_requests(
    directory: Path, tag: str, requests: Sequence[bytes], threads: int
) -> list[Path]:
    """``requests`` dealt round-robin into one file per thread; each record is
    its length in decimal, a newline, and the raw request."""
    files = []
    for thread in range(threads):
        path = directory / f"{tag}-{thread}.req"
        with path.open("wb") as out:
            for request in requests[thread::threads]:
                out.write(b"%d\n" % len(request))
                out.write(request)
        files.append(path)
    return files


def unique_batch(
    directory: Path, host: str, tag: str, count: int, threads: int
) -> Batch:
    now = int(time.time())
    bodies = [(f"msg_{tag}_{i:07d}", unique_body(tag, i)) for i in range(count)]
    requests = [raw_request(host, key, body, now) for key, body in bodies]
    return Batch(tag, count, bodies, write_requests(directory, tag, requests, threads))


def retry_batch(directory: Path, host: str, sent: Batch, threads: int) -> Batch:
    """The deliveries of ``sent`` again, as a partner retries them: same key
    and body, a later timestamp, a fresh signature."""
    later = int(time.time()) + 1
    requests = [raw_request(host, key, body, later) for key, body in sent.bodies]
    tag = f"{sent.tag}-retry"
    return Batch(
        tag, sent.count, sent.bodies, write_requests(directory, tag, requests, threads)
    )


def get_batch(directory: Path, host: str, path: str, threads: int) -> Batch:
    request = f"GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode()
    tag = "get" + path.replace("/", "-")
    return Batch(
        tag, 1, [], write_requests(directory, tag, [request] * threads, threads)
    )


def send_all(
    port: int, host: str, deliveries: Sequence[tuple[str, bytes]], connections: int = 8
) -> None:
    """Send each delivery (signed now) until it is answered 2xx, from
    ``connections`` keep-alive connections; not timed."""
    pending = list(deliveries)
    for _ in range(5):
        pending = send_round(port, host, pending, connections)
        if not pending:
            return
        time.sleep(1)
    raise RuntimeError(f"{len(pending)} deliveries were never answered 2xx")


def send_round(
    port: int, host: str, deliveries: list[tuple[str, bytes]], connections: int
) -> list[tuple[str, bytes]]:
    """Send each delivery once; the ones not answered 2xx."""
    failed: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    work = iter(deliveries)

    def sender() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        try:
            while True:
                with lock:
                    item = next(work, None)
                if item is None:
                    return
                key, body = item
                sock.sendall(raw_request(host, key, body, int(time.time())))
                answer = http.client.HTTPResponse(sock)
                answer.begin()
                answer.read()
                if not 200 <= answer.status < 300:
                    with lock:
                        failed.append(item)
                if answer.will_close:
                    sock.close()
                    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        finally:
            sock.close()

    threads = [threading.Thread(target=sender) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failed


# --------------------------------------------------------------------------
# wrk


LUA = """\
-- Generated by bench/ingest.py: hands out pre-signed raw requests.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(string.format("%(pattern)s", id), "rb"))
  local data = file:read("*a")
  file:close()
  reqs = {}
  local pos, size = 1, #data
  while pos <= size do
    local newline = string.find(data, "\\n", pos, true)
    local length = tonumber(string.sub(data, pos, newline - 1))
    reqs[#reqs + 1] = string.sub(data, newline + 1, newline + length)
    pos = newline + 1 + length
  end
  count = #reqs
  index = 0
  wrapped = 0
  math.randomseed(%(seed)d + id)
end

function request()
  index = index + 1
  if index > count then
    index = 1
    wrapped = wrapped + 1
  end
  return reqs[index]
end
function done(summary, latency, requests)
  local wrapped, sent = 0, 0
  for _, thread in ipairs(threads) do
    wrapped = wrapped + thread:get("wrapped")
    sent = sent + thread:get("index") + thread:get("wrapped") * thread:get("count")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\": %%.0f, \\"duration_us\\": %%.0f, " ..
    "\\"errors\\": {\\"connect\\": %%.0f, \\"read\\": %%.0f, \\"write\\": %%.0f, " ..
    "\\"status\\": %%.0f, \\"timeout\\": %%.0f}, " ..
    "\\"latency_us\\": {\\"mean\\": %%.1f, \\"max\\": %%.0f, \\"p50\\": %%.0f, " ..
    "\\"p90\\": %%.0f, \\"p99\\": %%.0f, \\"p999\\": %%.0f}, " ..
    "\\"wrapped\\": %%.0f, \\"sent\\": %%.0f}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency.mean, latency.max, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    wrapped, sent))
end
"""


def wrk_version() -> str:
    done = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, check=False
    )
    return (done.stdout or done.stderr).splitlines()[0].strip()


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrapped: int
    usage: Usage
    wrk_cpu_seconds: float


def run_wrk(
    directory: Path,
    url: str,
    batch: Batch,
    connections: int,
    duration: float,
    groups: dict[str, Callable[[], list[int]]],
    *,
    threads: int,
) -> WrkResult:
    """wrk with ``batch``'s requests for ``duration`` seconds; the usage of
    ``groups`` (and of wrk itself) meanwhile."""
    script = directory / f"{batch.tag}-c{connections}.lua"
    script.write_text(LUA % {"pattern": batch.pattern, "seed": 20261102})
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{max(connections, threads)}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
    ]
    return run_generator(command, duration, groups, "wrk")


def run_open_loop(
    url: str,
    batch: Batch,
    rate: float,
    duration: float,
    groups: dict[str, Callable[[], list[int]]],
    connections: int = 512,
) -> WrkResult:
    """``bench/open_loop.py``: ``batch``'s requests at ``rate`` per second
    (a constant arrival rate, timed from each request's scheduled start);
    the usage of ``groups`` (and of the generator) meanwhile."""
    parts = urllib.parse.urlsplit(url)
    command = [
        sys.executable,
        str(Path(__file__).with_name("open_loop.py")),
        "--host",
        parts.hostname or "127.0.0.1",
        "--port",
        str(parts.port),
        "--rate",
        f"{rate:.1f}",
        "--duration",
        str(duration),
        "--connections",
        str(connections),
        *map(str, batch.files),
    ]
    return run_generator(command, duration, groups, "open loop")


def run_generator(
    command: list[str],
    duration: float,
    groups: dict[str, Callable[[], list[int]]],
    name: str,
) -> WrkResult:
    """Run a load generator that prints ``BENCHJSON {...}`` (wrk with the
    Lua script, or ``bench/open_loop.py``), sampling ``groups``."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Sampler(groups) as sampler:
        # The generator loads its files before its clock starts: measured
        # CPU includes it, so take its figure from its own rusage below.
        out, err = process.communicate(timeout=duration + 300)
    if process.returncode != 0:
        raise RuntimeError(
            f"{name} failed ({process.returncode}): {err.strip()} {out[-500:]}"
        )
    lines = [line for line in out.splitlines() if line.startswith("BENCHJSON ")]
    if not lines:
        raise RuntimeError(f"{name} printed no figures: {out[-1000:]} {err[-500:]}")
    figures = json.loads(lines[-1].removeprefix("BENCHJSON "))
    latency = figures["latency_us"]
    errors = sum(int(v) for v in figures["errors"].values())
    # The generator has exited: its CPU time is in this process's reaped
    # children.
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (reaped.ru_utime - children.ru_utime) + (
        reaped.ru_stime - children.ru_stime
    )
    usage = sampler.usage({"wrk": wrk_cpu})
    return WrkResult(
        # Answers with a status over 399 (a 503...) are not ingest.
        requests=int(figures["requests"]) - int(figures["errors"]["status"]),
        seconds=figures["duration_us"] / 1e6,
        errors=errors,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        wrapped=int(figures["wrapped"]),
        usage=usage,
        wrk_cpu_seconds=wrk_cpu,
    )


def as_run(
    name: str, backend: str, connections: int, result: WrkResult, **extra: Any
) -> Run:
    return Run(
        name,
        backend,
        connections,
        result.requests,
        result.seconds,
        result.p50_ms,
        result.p99_ms,
        p90_ms=result.p90_ms,
        max_ms=result.max_ms,
        errors=result.errors,
        usage=result.usage,
        extra=extra,
    )


# --------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url}: server exited {process.returncode}:\n{tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not answering after 60 s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """``idemsync serve`` as a subprocess on a free port and a database."""

    def __init__(
        self,
        directory: Path,
        database: Database,
        workers: int,
        *,
        in_serve: bool,
        log_level: str,
    ) -> None:
        self.directory = directory
        self.database = database
        self.workers = workers
        self.log_level = log_level
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        config = directory / "idemsync.toml"
        config.write_text(
            CONFIG.format(
                in_serve=str(in_serve).lower(),
                source=SOURCE,
                tolerance=TOLERANCE_SECONDS,
            )
        )
        self.env = {
            **os.environ,
            "IDEMSYNC_CONFIG": str(config),
            "IDEMSYNC_DATABASE_URL": database.url,
            "IDEMSYNC_BENCH_SECRET": SECRET,
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None
        self.log_path = directory / "server.log"

    def start(self) -> Server:
        self.starts += 1
        self.log_path = self.directory / f"server-{self.starts}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "idemsync",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--log-level",
                self.log_level,
            ],
            env=self.env,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_answering(f"{self.url}/healthz", self.process, self.log_path)
        if self.workers > 1:
            # /healthz answers as soon as one worker does: wait for them all.
            deadline = time.monotonic() + 30
            while len(tree(self.process.pid)) < self.workers + 1:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            time.sleep(0.5)
        return self

    def pids(self) -> list[int]:
        return [] if self.process is None else tree(self.process.pid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in reversed(self.pids()):
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


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
def noop(directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log = directory / "noop.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.ingest", "noop-server", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            # Any request answers 200: probe it with a GET.
            wait_answering(f"http://127.0.0.1:{port}/", process, log)
            yield f"127.0.0.1:{port}", process
        finally:
            process.terminate()
            process.wait(timeout=10)


# --------------------------------------------------------------------------
# The ceiling: raw transactions writing what one delivery writes


@dataclass
class Template:
    """What one unique delivery wrote: its ``deliveries`` row (the values of
    ``DELIVERY_COLUMNS``), its events and their ledger rows (the values of
    ``LEDGER_COLUMNS``), as the backend's driver returns them."""

    delivery: tuple[Any, ...]
    events: list[tuple[Any, int, str, bytes]]
    ledger: list[tuple[Any, ...]]


LEDGER_SELECT = (
    "SELECT {columns}, e.topic, e.state FROM event_audit a "
    "JOIN idemsync_events e ON e.originator_id = a.originator_id "
    "AND e.originator_version = a.originator_version "
    "WHERE a.source = {p} AND a.idempotency_key = {p} ORDER BY a.notification_id"
)


def read_templates(database: Database, count: int = TEMPLATES) -> list[Template]:
    """The first ``count`` applied deliveries, read back with their rows."""
    columns = ", ".join(DELIVERY_COLUMNS)
    ledger = ", ".join(f"a.{c}" for c in LEDGER_COLUMNS)
    select = (
        f"SELECT {columns} FROM deliveries WHERE outcome = 'applied' "
        "ORDER BY received_at LIMIT {p}"
    )
    if database.is_postgres:
        with psycopg.connect(database.url) as conn:
            rows = conn.execute(select.format(p="%s"), (count,)).fetchall()
            found = [
                (
                    row,
                    conn.execute(
                        LEDGER_SELECT.format(columns=ledger, p="%s"), (row[0], row[1])
                    ).fetchall(),
                )
                for row in rows
            ]
    else:
        with sqlite3.connect(database.sqlite_path) as conn:
            rows = conn.execute(select.format(p="?"), (count,)).fetchall()
            found = [
                (
                    row,
                    conn.execute(
                        LEDGER_SELECT.format(columns=ledger, p="?"), (row[0], row[1])
                    ).fetchall(),
                )
                for row in rows
            ]
    templates = []
    width = len(LEDGER_COLUMNS)
    for delivery, events in found:
        templates.append(
            Template(
                tuple(delivery),
                [(e[0], e[1], e[width], bytes(e[width + 1])) for e in events],
                [tuple(e[:width]) for e in events],
            )
        )
    if not templates:
        raise RuntimeError("no applied delivery to copy for the raw ceiling")
    return templates


KEY_AT = DELIVERY_COLUMNS.index("idempotency_key")
RECEIVED_AT = DELIVERY_COLUMNS.index("received_at")
LEDGER_AT = {name: LEDGER_COLUMNS.index(name) for name in LEDGER_COLUMNS}


def fresh_rows(
    template: Template, key: str, text_ids: bool
) -> tuple[tuple[Any, ...], list[tuple[Any, int, str, bytes]], list[list[Any]]]:
    """The template's rows for a new delivery: a new key, new aggregate ids,
    received and recorded now (the notification ids come from the insert)."""
    now: Any = datetime.now(UTC)
    if text_ids:
        now = iso(now)
    ids: dict[Any, Any] = {}
    events = []
    for originator_id, at_version, topic, state in template.events:
        if originator_id not in ids:
            ids[originator_id] = uuid.uuid4().hex if text_ids else uuid.uuid4()
        events.append((ids[originator_id], at_version, topic, state))
    delivery = list(template.delivery)
    delivery[KEY_AT] = key
    delivery[RECEIVED_AT] = now
    ledger = []
    for row in template.ledger:
        entry = list(row)
        entry[LEDGER_AT["originator_id"]] = ids[row[LEDGER_AT["originator_id"]]]
        entry[LEDGER_AT["recorded_at"]] = now
        entry[LEDGER_AT["idempotency_key"]] = key
        ledger.append(entry)
    return tuple(delivery), events, ledger


def pg_raw_worker(
    url: str,
    templates: list[Template],
    lock: bool,
    worker: int,
    duration: float,
    barrier: Any,
    results: Any,
    sampled: Any,
) -> None:
    """One connection writing one delivery per transaction, pipelined, until
    ``duration`` after every worker is ready; puts (worker, its CPU seconds
    meanwhile, latencies, error), and keeps its connection (its backend's
    CPU time readable) until the parent has ``sampled``."""
    ledger_sql = LedgerWriter("%s", text_types=False).insert_sql
    deliveries_sql = insert_deliveries_sql("%s")
    try:
        conn = psycopg.connect(
            url, options="-c lock_timeout=5000 -c statement_timeout=30000"
        )
        info = CompositeInfo.fetch(conn, "stored_event_uuid")
        assert info is not None
        register_composite(info, conn)
        composite = info.python_type
        assert composite is not None
        cursor = conn.cursor()
        sequence = 0

        def one() -> None:
            nonlocal sequence
            sequence += 1
            template = templates[sequence % len(templates)]
            key = f"raw_{'l' if lock else 'n'}_{worker}_{os.getpid()}_{sequence}"
            delivery, events, ledger = fresh_rows(template, key, text_ids=False)
            with conn.pipeline(), conn.transaction():
                if lock:
                    cursor.execute("SET LOCAL lock_timeout = '5s'")
                    cursor.execute("LOCK TABLE idemsync_events IN EXCLUSIVE MODE")
                cursor.execute("NOTIFY idemsync_events")
                cursor.execute(EVENTS_SQL, ([composite(*e) for e in events],))
                assigned = {(r[1], r[2]): r[0] for r in cursor.fetchall()}
                for entry in ledger:
                    entry[LEDGER_AT["notification_id"]] = assigned[
                        (entry[0], entry[LEDGER_AT["originator_version"]])
                    ]
                cursor.executemany(ledger_sql, ledger)
                cursor.execute(deliveries_sql, delivery)

        for _ in range(5):  # warm up: prepared statements, caches
            one()
        barrier.wait(timeout=120)
        latencies = []
        cpu = time.process_time()
        deadline = time.monotonic() + duration
        while True:
            began = time.monotonic()
            if began >= deadline:
                break
            one()
            latencies.append(time.monotonic() - began)
        cpu = time.process_time() - cpu
        results.put((worker, cpu, latencies, None))
        sampled.wait(timeout=60)
        conn.close()
    except Exception as error:  # reported by the parent
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put((worker, 0.0, [], f"{type(error).__name__}: {error}"))


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def postgres_ceiling(
    url: str,
    templates: list[Template],
    processes: int,
    duration: float,
    lock: bool,
) -> Run:
    """``processes`` raw writers at once for ``duration`` seconds."""
    context = multiprocessing.get_context("fork")  # no re-import: starts fast
    barrier = context.Barrier(processes + 1)
    results = context.Queue()
    sampled = context.Event()
    workers = [
        context.Process(
            target=pg_raw_worker,
            args=(url, templates, lock, i, duration, barrier, results, sampled),
            daemon=True,
        )
        for i in range(processes)
    ]
    for process in workers:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=120)
    with Sampler({"postgres": lambda: postgres_pids(url)}) as sampler:
        found = [results.get(timeout=duration + 120) for _ in workers]
    sampled.set()
    for process in workers:
        process.join(timeout=30)
    problems = [problem for *_, problem in found if problem]
    if problems:
        raise RuntimeError(f"raw psycopg writer failed: {problems[0]}")
    latencies = [s for _, _, seconds, _ in found for s in seconds]
    name = "raw psycopg" + ("" if lock else ", no table lock")
    return Run(
        name,
        "postgres",
        processes,
        len(latencies),
        duration,
        percentile(latencies, 50) * 1000,
        percentile(latencies, 99) * 1000,
        p90_ms=percentile(latencies, 90) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
        usage=sampler.usage({"client": sum(cpu for _, cpu, _, _ in found)}),
        extra={
            "deliveries_per_transaction": 1,
            "events_per_delivery": statistics.fmean(len(t.events) for t in templates),
            "table_lock": lock,
        },
    )


PGBENCH_SCRIPT = Path(__file__).with_name("pgbench_ceiling.sql")
PGBENCH_CLIENTS = (4, 16, 32)


def pgbench_ceiling(url: str, clients: int, duration: float) -> Run:
    """``pgbench`` (a C client) running ``bench/pgbench_ceiling.sql`` (one
    delivery's rows per transaction, no table lock) with ``clients``
    connections: what PostgreSQL itself does with those writes, without a
    Python client's cost."""
    parts = urllib.parse.urlsplit(url)
    command = [
        "pgbench",
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
        "-n",
        "-f",
        str(PGBENCH_SCRIPT),
        "-c",
        str(clients),
        "-j",
        str(min(clients, os.cpu_count() or 1)),
        "-T",
        str(max(1, round(duration))),
        "-r",
        parts.path.lstrip("/"),
    ]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    with Sampler({"postgres": lambda: postgres_pids(url)}) as sampler:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=duration + 120
        )
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip()[-500:]}")
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (reaped.ru_utime - children.ru_utime) + (
        reaped.ru_stime - children.ru_stime
    )
    transactions = int(_pgbench_figure(done.stdout, r"processed: (\d+)"))
    latency_ms = _pgbench_figure(done.stdout, r"latency average = ([\d.]+) ms")
    seconds = transactions / _pgbench_figure(done.stdout, r"tps = ([\d.]+)")
    return Run(
        "pgbench",
        "postgres",
        clients,
        transactions,
        seconds,
        latency_ms,
        0.0,
        usage=sampler.usage({"client": client_cpu}),
        extra={
            "deliveries_per_transaction": 1,
            "table_lock": False,
            "latency": "pgbench's average (no percentiles)",
        },
    )


def _pgbench_figure(output: str, pattern: str) -> float:
    found = re.search(pattern, output)
    if found is None:
        raise RuntimeError(f"pgbench printed no {pattern!r}: {output[-500:]}")
    return float(found.group(1))


def sqlite_ceiling(path: Path, templates: list[Template], duration: float) -> Run:
    """One raw sqlite3 writer, one delivery per transaction (WAL, the
    library's connection settings)."""
    ledger_sql = LedgerWriter("?", text_types=True).insert_sql
    deliveries_sql = insert_deliveries_sql("?")
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=5
    )
    cursor = conn.cursor()
    sequence = 0

    def one() -> None:
        nonlocal sequence
        sequence += 1
        template = templates[sequence % len(templates)]
        delivery, events, ledger = fresh_rows(
            template, f"raw_{sequence}", text_ids=True
        )
        cursor.execute("BEGIN")
        try:
            cursor.execute(deliveries_sql, delivery)
            for entry, event in zip(ledger, events, strict=True):
                cursor.execute(SQLITE_EVENTS_SQL, event)
                entry[LEDGER_AT["notification_id"]] = cursor.lastrowid
            cursor.executemany(ledger_sql, ledger)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    for _ in range(5):
        one()
    latencies = []
    deadline = time.monotonic() + duration
    while (began := time.monotonic()) < deadline:
        one()
        latencies.append(time.monotonic() - began)
    conn.close()
    return Run(
        "raw sqlite3",
        "sqlite",
        1,
        len(latencies),
        duration,
        percentile(latencies, 50) * 1000,
        percentile(latencies, 99) * 1000,
        p90_ms=percentile(latencies, 90) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
        extra={
            "deliveries_per_transaction": 1,
            "events_per_delivery": statistics.fmean(len(t.events) for t in templates),
        },
    )


# --------------------------------------------------------------------------
# --stored-events: a store of N events before measuring


PREFILL_GROUP = 500
"""Most new orders per wave: 500 deliveries per commit."""


def prefill_worker(
    url: str, worker: int, target: int, group: int, results: Any
) -> None:
    """Waves of ``group`` new orders through ``SyncService.decide``/``commit``
    (each wave: a commit of its customers, then one per lifecycle step), until
    the log's head reaches ``target``; puts (deliveries, error)."""
    from domain.application import SyncService
    from domain.delivery import Delivery
    from infrastructure.mappings.standard import map_standard

    rng = random.Random(worker)
    service = SyncService(env=Database(url, pool_size=2).eventsourcing_env())
    deliveries = 0
    try:
        wave = 0
        while int(service.recorder.max_notification_id() or 0) < target:
            orders = [
                (
                    f"ord_pre{worker}_{wave:06d}_{i:03d}",
                    f"cus_pre{worker}_{wave:06d}_{i // 4:03d}",
                )
                for i in range(group)
            ]
            customers = list(dict.fromkeys(c for _, c in orders))
            streams = [order_stream(rng, o, c) for o, c in orders]
            batches = [[customer_upsert(rng, c, 1) for c in customers]]
            batches += [[s[step] for s in streams] for step in range(4)]
            for batch in batches:
                decisions = []
                for body in batch:
                    key = f"key_pre{worker}_{deliveries:09d}"
                    delivery = Delivery(SOURCE, key, datetime.now(UTC), body)
                    decisions.append(service.decide(delivery, map_standard(body, {})))
                    deliveries += 1
                service.commit(decisions)
            wave += 1
        results.put((worker, deliveries, None))
    except Exception as error:
        results.put((worker, deliveries, f"{type(error).__name__}: {error}"))
    finally:
        service.close()


def prefill(database: Database, events: int, processes: int) -> dict[str, Any]:
    """Fill the store to ``events`` events from ``processes`` processes."""
    context = multiprocessing.get_context("fork")  # no re-import: starts fast
    results = context.Queue()
    began = time.monotonic()
    # A wave of g orders records about 10 g events: small stores, small waves.
    group = max(5, min(PREFILL_GROUP, events // (10 * processes)))
    workers = [
        context.Process(
            target=prefill_worker, args=(database.url, i, events, group, results)
        )
        for i in range(processes)
    ]
    for process in workers:
        process.start()
    found: list[tuple[int, int, str | None]] = []
    while len(found) < processes:
        try:
            found.append(results.get(timeout=15))
        except Exception:
            head = store_counts(database)["events"]
            rate = head / (time.monotonic() - began)
            print(
                f"  prefill: {head:,}/{events:,} events, {rate:,.0f} ev/s",
                file=sys.stderr,
                flush=True,
            )
    for process in workers:
        process.join(timeout=60)
    problems = [problem for *_, problem in found if problem]
    if problems:
        raise RuntimeError(f"prefill failed: {problems[0]}")
    seconds = time.monotonic() - began
    head = store_counts(database)["events"]
    return {
        "events": head,
        "deliveries": sum(d for _, d, _ in found),
        "processes": processes,
        "seconds": round(seconds, 1),
        "events_per_second": round(head / seconds, 1) if seconds else 0.0,
        "orders_per_wave": group,
        "how": f"waves of {group} new orders (customer upserts, then created, "
        "paid, shipped+delivered or cancelled+refunded) through "
        f"SyncService.decide and SyncService.commit, up to {group} deliveries "
        f"per commit, from {processes} processes",
    }


def store_counts(database: Database) -> dict[str, Any]:
    queries = {
        "events": "SELECT count(*) FROM idemsync_events",
        "ledger_rows": "SELECT count(*) FROM event_audit",
        "deliveries": "SELECT count(*) FROM deliveries",
    }
    outcomes = "SELECT outcome, count(*) FROM deliveries GROUP BY outcome ORDER BY 1"
    if database.is_postgres:
        with psycopg.connect(database.url) as conn:
            counts: dict[str, Any] = {
                k: (conn.execute(q).fetchone() or (0,))[0] for k, q in queries.items()
            }
            counts["outcomes"] = dict(conn.execute(outcomes).fetchall())
    else:
        with sqlite3.connect(database.sqlite_path) as conn:
            counts = {k: conn.execute(q).fetchone()[0] for k, q in queries.items()}
            counts["outcomes"] = dict(conn.execute(outcomes).fetchall())
    return counts


# --------------------------------------------------------------------------
# Measuring one backend


@dataclass
class Options:
    duration: float = 10.0
    connections: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    raw_levels: list[int] = field(default_factory=lambda: [1, 4, 8, 16])
    raw_duration: float = 5.0
    threads: int = 1
    pg_workers: int = 2
    in_serve: bool = True
    log_level: str = "info"
    duplicates: int = 5000
    stored_events: int = 0
    prefill_processes: int = 3
    template_events: int = 20_000
    postgres: str = DEFAULT_PG


class Bench:
    """The figures of one backend, against one running server."""

    def __init__(
        self, backend: str, database: Database, directory: Path, options: Options
    ) -> None:
        self.backend = backend
        self.database = database
        self.directory = directory
        self.options = options
        workers = options.pg_workers if database.is_postgres else 1
        self.result = Backend(backend, workers)
        self.server = Server(
            directory,
            database,
            workers,
            in_serve=options.in_serve,
            log_level=options.log_level,
        )
        self.tags = 0
        self.rate_guess = 2000.0

    def groups(self) -> dict[str, Callable[[], list[int]]]:
        groups: dict[str, Callable[[], list[int]]] = {"server": self.server.pids}
        if self.database.is_postgres:
            groups["postgres"] = lambda: postgres_pids(self.database.url)
        return groups

    def tag(self, kind: str) -> str:
        self.tags += 1
        return f"{self.backend[:2]}{kind}{self.tags:03d}"

    def settle(self, run: Run | None = None, timeout: float = 300.0) -> None:
        """Wait until the server's projections have caught up with the log,
        so that one run's backlog is not the next run's load; how long that
        took goes into ``run`` (a long wait means the run went faster than
        the read models can follow). Checkpoints are not waited for: each
        covers at most 10 s of ledger rows, a fraction of a second's work."""
        began = time.monotonic()
        engine = self.database.engine()
        names = list(all_projections())
        marks = ", ".join(f":n{i}" for i in range(len(names)))
        behind = text(
            "SELECT (SELECT coalesce(max(notification_id), 0) FROM event_audit) "
            "- (SELECT coalesce(min(position), 0) FROM projection_positions "
            f"WHERE name IN ({marks}))"
        )
        params = {f"n{i}": name for i, name in enumerate(names)}
        while time.monotonic() - began < timeout:
            with engine.connect() as conn:
                if int(conn.execute(behind, params).scalar() or 0) <= 0:
                    break
            time.sleep(0.1)
        if run is not None:
            run.extra["caught_up_after_s"] = round(time.monotonic() - began, 1)

    def wrk(self, batch: Batch, connections: int, duration: float) -> WrkResult:
        return run_wrk(
            self.directory,
            self.server.url,
            batch,
            connections,
            duration,
            self.groups(),
            threads=self.options.threads,
        )

    def unique(self, connections: int, duration: float) -> WrkResult:
        """Fresh deliveries only: sized from the expected rate, and run again
        larger if wrk ran out of them (it would have sent some twice)."""
        count = int(self.rate_guess * 1.5 * duration) + 200 * connections
        while True:
            batch = unique_batch(
                self.directory,
                self.server.host,
                self.tag("u"),
                count,
                self.options.threads,
            )
            result = self.wrk(batch, connections, duration)
            for path in batch.files:
                path.unlink()
            if result.wrapped == 0:
                return result
            print(
                f"  {count} unique requests were too few: again with more",
                file=sys.stderr,
            )
            self.rate_guess = max(self.rate_guess, result.requests / result.seconds)
            count = int(result.requests * 2.5) + 1000

    def run(self) -> Backend:
        options, result = self.options, self.result
        began = time.monotonic()
        self.server.start()
        print(
            f"  {self.backend}: serving ({self.server.workers} worker(s)) after "
            f"{time.monotonic() - began:.1f} s; calibrating, sending the "
            f"{options.duplicates} deliveries to repeat",
            file=sys.stderr,
            flush=True,
        )
        try:
            time.sleep(0.5)
            result.rss_idle_mb = rss_mb(self.server.pids())
            top = max(options.connections)
            # Calibrate (and warm up): the rate at the most connections.
            calibration = self.unique(top, max(1.0, options.duration / 4))
            self.rate_guess = max(200.0, calibration.requests / calibration.seconds)
            # The deliveries that will be sent again as duplicates: sent
            # once each, untimed, until every one is answered 2xx.
            tag = self.tag("s")
            seed = Batch(
                tag,
                options.duplicates,
                [
                    (f"msg_{tag}_{i:07d}", unique_body(tag, i))
                    for i in range(options.duplicates)
                ],
            )
            send_all(self.server.port, self.server.host, seed.bodies)
            self.settle()
            for connections in options.connections:
                print(
                    f"  {self.backend}: unique, {connections} connections",
                    file=sys.stderr,
                    flush=True,
                )
                found = self.unique(connections, options.duration)
                result.unique.append(as_run("unique", self.backend, connections, found))
                self.settle(result.unique[-1])
                self.rate_guess = max(self.rate_guess, found.requests / found.seconds)
            result.at_80 = self.at_80()
            self.settle(result.at_80)
            retries = retry_batch(
                self.directory, self.server.host, seed, options.threads
            )
            for connections in options.connections:
                print(
                    f"  {self.backend}: duplicate, {connections} connections",
                    file=sys.stderr,
                    flush=True,
                )
                found = self.wrk(retries, connections, options.duration)
                result.duplicate.append(
                    as_run(
                        "duplicate",
                        self.backend,
                        connections,
                        found,
                        pool=options.duplicates,
                    )
                )
            health = get_batch(
                self.directory, self.server.host, "/healthz", options.threads
            )
            # One connection: the HTTP stack's latency floor; the most: its
            # throughput.
            for connections in sorted({1, top}):
                found = self.wrk(health, connections, options.duration)
                result.healthz.append(
                    as_run("GET /healthz", self.backend, connections, found)
                )
            result.store = store_counts(self.database)
        finally:
            self.server.stop()
        # The ceiling before a fill: the fill leaves PostgreSQL flushing
        # gigabytes for minutes, which would lower it.
        self.ceiling()
        if options.stored_events and self.database.is_postgres:
            self.with_stored_events()
        return result

    def at_80(self) -> Run | None:
        """The latency a partner sees at 80 % of the maximum throughput:
        fresh deliveries arriving at a constant rate, 0.8 x the best unique
        rate, each timed from when it was due (``bench/open_loop.py``)."""
        best = Backend.best(self.result.unique)
        if best is None:
            return None
        target = 0.8 * best.per_second
        duration = self.options.duration
        print(
            f"  {self.backend}: 80% load, open loop at {target:.0f} per s",
            file=sys.stderr,
            flush=True,
        )
        batch = unique_batch(
            self.directory,
            self.server.host,
            self.tag("o"),
            int(target * duration) + 100,
            1,
        )
        found = run_open_loop(
            self.server.url, batch, target, duration, self.groups(), OPEN_LOOP_LIMIT
        )
        for path in batch.files:
            path.unlink()
        return as_run(
            "unique at 80% load",
            self.backend,
            OPEN_LOOP_LIMIT,
            found,
            target_per_second=round(target, 1),
            fraction_of_max=round(found.requests / found.seconds / best.per_second, 3),
            open_loop=True,
        )

    def with_stored_events(self) -> None:
        """Fill the store (``bench/bulk_store.py``: a template written by the
        engine, cloned by ``COPY``), restart the server, unique ingest again."""
        options, result = self.options, self.result
        best = Backend.best(result.unique)
        assert best is not None
        print(
            f"  {self.backend}: template of {options.template_events:,} events "
            "through SyncService",
            file=sys.stderr,
        )
        with postgres_database(options.postgres) as scratch:
            scratch.upgrade()
            made = prefill(scratch, options.template_events, options.prefill_processes)
            template = bulk_store.read_template(scratch.url)
        print(
            f"  {self.backend}: cloning it to {options.stored_events:,} more events",
            file=sys.stderr,
        )
        filled = bulk_store.fill(
            self.database, options.stored_events, template, options.prefill_processes
        )
        result.prefill = {"template": made, **filled, "how": bulk_store.HOW}
        result.stored_events = store_counts(self.database)["events"]
        self.server.start()
        try:
            self.unique(best.connections, max(1.0, options.duration / 4))  # warm up
            self.settle()
            found = self.unique(best.connections, options.duration)
            result.stored = as_run(
                f"unique, {result.stored_events:,} events stored",
                self.backend,
                best.connections,
                found,
                stored_events=result.stored_events,
            )
            self.settle(result.stored)
        finally:
            self.server.stop()

    def ceiling(self) -> None:
        """Raw writes of what one of this server's deliveries wrote, into a
        fresh database of the same backend."""
        options, result = self.options, self.result
        templates = read_templates(self.database)
        if not self.database.is_postgres:
            with sqlite_database() as scratch:
                scratch.upgrade()
                print("  sqlite: raw sqlite3 ceiling", file=sys.stderr, flush=True)
                result.ceiling.append(
                    sqlite_ceiling(scratch.sqlite_path, templates, options.raw_duration)
                )
            return
        with postgres_database(options.postgres) as scratch:
            scratch.upgrade()
            for lock in (True, False):
                for processes in options.raw_levels:
                    print(
                        f"  postgres: raw psycopg, {processes} connections"
                        + ("" if lock else ", no table lock"),
                        file=sys.stderr,
                        flush=True,
                    )
                    run = postgres_ceiling(
                        scratch.url, templates, processes, options.raw_duration, lock
                    )
                    (result.ceiling if lock else result.ceiling_no_lock).append(run)
            if shutil.which("pgbench") is None:
                print(
                    "  postgres: no pgbench on PATH: no C-client ceiling",
                    file=sys.stderr,
                )
                return
            for clients in PGBENCH_CLIENTS:
                print(
                    f"  postgres: pgbench, {clients} clients",
                    file=sys.stderr,
                    flush=True,
                )
                result.ceiling_pgbench.append(
                    pgbench_ceiling(scratch.url, clients, options.raw_duration)
                )


def noop_ceiling(directory: Path, options: Options) -> Run:
    """wrk, the Lua script and a file of unique signed requests against a
    server that answers without reading them."""
    top = max(options.connections)
    with noop(directory) as (host, process):
        batch = unique_batch(directory, host, "noop", 20_000, options.threads)
        found = run_wrk(
            directory,
            f"http://{host}",
            batch,
            top,
            options.duration,
            {"server": lambda: [process.pid]},
            threads=options.threads,
        )
        for path in batch.files:
            path.unlink()
    per_cpu = found.requests / found.wrk_cpu_seconds if found.wrk_cpu_seconds else 0.0
    return as_run(
        "wrk -> no-op server",
        "-",
        top,
        found,
        wrk_requests_per_cpu_second=round(per_cpu, 1),
    )


def measure(backends: Sequence[str], options: Options) -> dict[str, Any]:
    """Every figure: the load generator's ceiling, then each backend."""
    with tempfile.TemporaryDirectory(prefix="idemsync-ingest-") as name:
        directory = Path(name)
        print("load generator: wrk against a no-op server", file=sys.stderr, flush=True)
        loadgen = noop_ceiling(directory, options)
        results = []
        for backend in backends:
            print(f"{backend}: ingest", file=sys.stderr, flush=True)
            results.append(measure_backend(backend, directory, options))
    return report(loadgen, results, options)


def measure_backend(backend: str, directory: Path, options: Options) -> Backend:
    work = directory / backend
    work.mkdir()
    if backend == "sqlite":
        with sqlite_database() as database:
            database.upgrade()
            return Bench(backend, database, work, options).run()
    try:
        psycopg.connect(f"{options.postgres}/postgres", connect_timeout=3).close()
    except psycopg.OperationalError as error:
        return Backend(
            backend, skipped=f"not reachable at {options.postgres}: {error}".strip()
        )
    with postgres_database(options.postgres) as database:
        database.upgrade()
        try:
            return Bench(backend, database, work, options).run()
        finally:
            database.close()


# --------------------------------------------------------------------------
# Reporting


def environment() -> dict[str, Any]:
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "eventsourcing": version("eventsourcing"),
        "psycopg": version("psycopg"),
        "uvicorn": version("uvicorn"),
        "starlette": version("starlette"),
    }
    try:
        found["wrk"] = wrk_version()
    except OSError:
        found["wrk"] = None
    for module in ("uvloop", "httptools"):
        try:
            found[module] = version(module)
        except Exception:
            found[module] = None
    return found


def report(
    loadgen: Run, results: Sequence[Backend], options: Options
) -> dict[str, Any]:
    backends = {result.backend: result.to_json() for result in results}
    out: dict[str, Any] = {
        "benchmark": "ingest",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {
            "duration_seconds": options.duration,
            "connections": options.connections,
            "raw_levels": options.raw_levels,
            "raw_duration_seconds": options.raw_duration,
            "wrk_threads": options.threads,
            "postgres_server_workers": options.pg_workers,
            "projections_in_serve": options.in_serve,
            "server_log_level": options.log_level,
            "duplicate_pool": options.duplicates,
            "stored_events": options.stored_events,
        },
        "definitions": {
            "unique": "order.created of a new order per request (1 deliveries "
            "row + 3 events + 3 event_audit rows), wrk closed loop",
            "duplicate": "already-applied deliveries re-signed with a later "
            "timestamp, cycled",
            "unique_at_80_percent": "fresh deliveries at a constant arrival "
            "rate of 80% of the unique maximum (bench/open_loop.py, up to "
            f"{OPEN_LOOP_LIMIT} connections), each timed from when it was due",
            "ceiling": "raw psycopg, one delivery's rows per transaction "
            "(SET LOCAL lock_timeout, LOCK TABLE idemsync_events IN EXCLUSIVE "
            "MODE, NOTIFY, unnest(stored_event_uuid[]) insert, event_audit "
            "rows, deliveries row), pipelined, from N processes; sqlite: "
            "raw sqlite3, one writer",
            "cpu_cores": "CPU time / wall time of each process group during "
            "the run (1.0 = one core)",
            "server_rss_mb": "RSS summed over idemsync serve's process tree",
        },
        "environment": environment(),
        "load_generator": loadgen.to_json(),
        "backends": backends,
    }
    out["load_generator_headroom"] = headroom(out)
    out["targets"] = targets(out)
    return out


def headroom(ingest: dict[str, Any]) -> dict[str, Any]:
    """How much of one core wrk needs for idemsync's best figure, from its
    CPU time per request against the no-op server, and how far its own
    ceiling (requests per CPU-second of one wrk thread) is above that."""
    per_cpu = ingest["load_generator"].get("wrk_requests_per_cpu_second") or 0.0
    best = 0.0
    for figures in ingest["backends"].values():
        for kind in ("unique", "duplicate"):
            found = _best(figures.get(kind))
            if found:
                best = max(best, found["per_second"])
    return {
        "wrk_requests_per_cpu_second": per_cpu,
        "best_idemsync_per_second": best,
        "wrk_cores_at_best": round(best / per_cpu, 3) if per_cpu else None,
        "ceiling_over_best": round(per_cpu / best, 1) if best else None,
    }


def _best(section: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if not section else section.get("best")


def strongest_ceiling(pg: dict[str, Any]) -> dict[str, Any] | None:
    """The ceiling the unique figure is held against: the best raw run at any
    concurrency, with or without the recorder's table lock, from Python or
    from ``pgbench`` (raw transactions doing the same writes). The
    table-locked runs are what idemsync's own recorder allows, not what
    PostgreSQL can do."""
    runs = [
        run
        for run in (
            _best(pg.get("ceiling")),
            _best(pg.get("ceiling_no_table_lock")),
            _best(pg.get("ceiling_pgbench")),
        )
        if run
    ]
    return max(runs, key=lambda run: run["per_second"]) if runs else None


def targets(
    ingest: dict[str, Any] | None, rebuild_ratio: float | None = None
) -> list[dict[str, Any]]:
    """The issue's targets (PostgreSQL): each figure, its ratio, PASS/MISS
    (or NOT RUN when its figures are missing)."""
    pg = (ingest or {}).get("backends", {}).get("postgres") or {}
    unique = _best(pg.get("unique"))
    ceiling = strongest_ceiling(pg)
    duplicate = _best(pg.get("duplicate"))
    at_80 = pg.get("unique_at_80_percent")
    stored = pg.get("unique_with_stored_events")

    def row(
        name: str, figure: str, value: float | None, limit: float, higher: bool
    ) -> dict[str, Any]:
        if value is None:
            verdict = "NOT RUN"
        else:
            verdict = (
                "PASS" if (value >= limit if higher else value <= limit) else "MISS"
            )
        return {
            "target": name,
            "figures": figure,
            "value": None if value is None else round(value, 3),
            "limit": f"{'>=' if higher else '<='} {limit:g}",
            "verdict": verdict,
        }

    missing: tuple[str, float | None] = ("-", None)
    against_ceiling = missing
    if unique and ceiling:
        against_ceiling = (
            f"{unique['per_second']:,.0f} / {ceiling['per_second']:,.0f} per s",
            unique["per_second"] / ceiling["per_second"],
        )
    against_unique = missing
    if unique and duplicate:
        against_unique = (
            f"{duplicate['per_second']:,.0f} / {unique['per_second']:,.0f} per s",
            duplicate["per_second"] / unique["per_second"],
        )
    loaded = missing
    if at_80:
        loaded = (
            f"{at_80['per_second']:,.0f} per s = {at_80['fraction_of_max']:.0%} "
            f"of max, p99 {at_80['p99_ms']:.1f} ms",
            at_80["p99_ms"],
        )
    rebuilt = (
        "-" if rebuild_ratio is None else "bench/rebuild.py, postgres",
        rebuild_ratio,
    )
    stored_name = "ingest with 10M events stored / empty (--stored-events N)"
    against_empty = missing
    if stored and unique:
        same = [
            r for r in pg["unique"]["runs"] if r["connections"] == stored["connections"]
        ]
        empty = same[0] if same else unique
        stored_name = f"ingest with {stored['stored_events']:,} events stored / empty"
        against_empty = (
            f"{stored['per_second']:,.0f} / {empty['per_second']:,.0f} per s",
            stored["per_second"] / empty["per_second"],
        )
    rows = [
        row(
            "unique ingest / strongest raw ceiling",
            *against_ceiling,
            TARGETS["unique_vs_ceiling"],
            True,
        ),
        row(
            "duplicate / unique ingest",
            *against_unique,
            TARGETS["duplicate_vs_unique"],
            True,
        ),
        row(
            "p99 at 80% of max throughput (ms)",
            *loaded,
            TARGETS["p99_at_80_ms"],
            False,
        ),
        row("rebuild / read+decode", *rebuilt, 0.3, True),
        row(stored_name, *against_empty, TARGETS["stored_vs_empty"], True),
    ]
    return rows


def cpu_ms_per_request(run: dict[str, Any]) -> dict[str, float]:
    """Milliseconds of CPU per request (delivery, transaction) of the server
    and of the database during ``run`` (none without a rate)."""
    cores = (run.get("usage") or {}).get("cpu_cores", {})
    rate = run.get("per_second") or 0.0
    if rate <= 0:
        return {}
    return {
        name: cores[name] / rate * 1000
        for name in ("server", "postgres", "client")
        if name in cores
    }


def cpu_note(run: dict[str, Any]) -> str:
    usage = run.get("usage")
    if not usage:
        return ""
    names = {"server": "srv", "postgres": "pg", "client": "raw"}
    parts = [f"{names.get(k, k)} {v:.2f}" for k, v in usage["cpu_cores"].items()]
    note = " ".join(parts) + f" busy {usage['machine_busy_fraction']:.0%}"
    per_request = cpu_ms_per_request(run)
    if per_request:
        note += "; ms CPU each: " + " ".join(
            f"{names.get(k, k)} {v:.2f}" for k, v in per_request.items()
        )
    if run.get("caught_up_after_s") is not None:
        note += f"; read models caught up {run['caught_up_after_s']:.1f} s after"
    if run.get("errors"):
        note += f"; {run['errors']:,} ERRORS (not counted)"
    return note


def line(
    section: str,
    name: str,
    backend: str,
    run: dict[str, Any] | None,
    ratio: str = "",
    note: str | None = None,
) -> str:
    if run is None:
        return f"{section:<8} {name:<34} {backend:<9} (not run)"
    return (
        f"{section:<8} {name:<34} {backend:<9}{run['connections']:>6}"
        f"{run['per_second']:>10,.0f}{run['p50_ms']:>9.2f}{run['p99_ms']:>9.2f}"
        f"{ratio:>8}  {cpu_note(run) if note is None else note}"
    )


HEADER = (
    f"{'section':<8} {'measurement':<34} {'backend':<9}{'conns':>6}"
    f"{'per s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}  cpu (cores) during the run"
)


def ingest_lines(ingest: dict[str, Any]) -> list[str]:
    """The ingest figures as table lines (``HEADER``'s columns)."""
    lines = []
    backends = ingest["backends"]
    pg, lite = backends.get("postgres") or {}, backends.get("sqlite") or {}
    for run in (pg.get("ceiling") or {}).get("runs", []):
        lines.append(line("ceiling", "raw psycopg, table lock", "postgres", run))
    for run in (pg.get("ceiling_no_table_lock") or {}).get("runs", []):
        lines.append(line("ceiling", "raw psycopg, no table lock", "postgres", run))
    for run in (pg.get("ceiling_pgbench") or {}).get("runs", []):
        lines.append(line("ceiling", "pgbench (C), no table lock", "postgres", run))
    best_pg = strongest_ceiling(pg)
    if best_pg:
        lines.append(
            line(
                "ceiling",
                "CEILING: strongest of the above",
                "postgres",
                best_pg,
                note=f"{best_pg['name']}; {cpu_note(best_pg)}",
            )
        )
    for run in (lite.get("ceiling") or {}).get("runs", []):
        lines.append(line("ceiling", "raw sqlite3 CEILING, one writer", "sqlite", run))
    loadgen = ingest["load_generator"]
    per_cpu = loadgen.get("wrk_requests_per_cpu_second", 0.0)
    lines.append(
        line(
            "loadgen",
            "wrk -> no-op server",
            "-",
            loadgen,
            note=f"{cpu_note(loadgen)}; wrk: {per_cpu:,.0f} req per CPU-s",
        )
    )
    room = ingest.get("load_generator_headroom") or {}
    if room.get("ceiling_over_best"):
        lines.append(
            f"{'loadgen':<8} wrk needs {room['wrk_cores_at_best']:.3f} cores for "
            f"idemsync's best {room['best_idemsync_per_second']:,.0f} per s: its "
            f"ceiling is {room['ceiling_over_best']:,.0f}x that"
        )
    for backend, figures in backends.items():
        if "skipped" in figures:
            lines.append(f"{'ingest':<8} {backend}: skipped: {figures['skipped']}")
            continue
        for run in figures["healthz"]:
            lines.append(line("loadgen", "wrk -> idemsync GET /healthz", backend, run))
        ceiling = strongest_ceiling(figures)
        for run in figures["unique"]["runs"]:
            lines.append(line("ingest", "unique", backend, run))
        unique = _best(figures["unique"])
        if unique:
            ratio = (
                f"{unique['per_second'] / ceiling['per_second']:.2f}" if ceiling else ""
            )
            lines.append(
                line("ingest", "unique MAX (ratio: / ceiling)", backend, unique, ratio)
            )
        at_80 = figures["unique_at_80_percent"]
        if at_80:
            lines.append(
                line(
                    "ingest",
                    "unique at 80% load (ratio: / max)",
                    backend,
                    at_80,
                    f"{at_80['fraction_of_max']:.2f}",
                    f"open loop at {at_80['target_per_second']:,.0f} per s; "
                    + cpu_note(at_80),
                )
            )
        for run in figures["duplicate"]["runs"]:
            lines.append(line("ingest", "duplicate", backend, run))
        duplicate = _best(figures["duplicate"])
        if duplicate and unique:
            ratio = f"{duplicate['per_second'] / unique['per_second']:.2f}"
            lines.append(
                line(
                    "ingest",
                    "duplicate MAX (ratio: / unique)",
                    backend,
                    duplicate,
                    ratio,
                )
            )
        stored = figures.get("unique_with_stored_events")
        if stored and unique:
            same = [
                r
                for r in figures["unique"]["runs"]
                if r["connections"] == stored["connections"]
            ]
            empty = same[0] if same else unique
            ratio = f"{stored['per_second'] / empty['per_second']:.2f}"
            lines.append(
                line(
                    "ingest",
                    f"unique, {stored['stored_events']:,} stored",
                    backend,
                    stored,
                    ratio,
                )
            )
        rss = figures["server_rss_mb"]
        lines.append(
            f"{'memory':<8} {'server RSS (process tree)':<34} {backend:<9}"
            f"{'':>6}{'':>10}{'':>9}{'':>9}{'':>8}  idle {rss['idle']:,.0f} MB, "
            f"peak under load {rss['peak']:,.0f} MB "
            f"({figures['server_workers']} worker(s))"
        )
    return lines


def target_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = [
        f"{'target (PostgreSQL)':<58}{'ratio':>8}  {'limit':<8}{'verdict':<9}figures"
    ]
    out.append("-" * len(out[0]))
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.2f}"
        out.append(
            f"{row['target']:<58}{value:>8}  {row['limit']:<8}"
            f"{row['verdict']:<9}{row['figures']}"
        )
    return out


def table(ingest: dict[str, Any], *, with_targets: bool = True) -> str:
    lines = [HEADER, "-" * (len(HEADER) + 20), *ingest_lines(ingest)]
    if with_targets:
        lines += ["", *target_lines(ingest["targets"])]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Command line


def integers(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive integers expected: {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ingest benchmark (also ``bench/run.py``'s)."""
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per wrk run"
    )
    parser.add_argument(
        "--connections",
        type=integers,
        default=[1, 4, 16, 64],
        help="wrk connection counts",
    )
    parser.add_argument(
        "--raw-levels",
        type=integers,
        default=[1, 4, 8, 16],
        help="raw psycopg connection counts",
    )
    parser.add_argument(
        "--raw-duration", type=float, default=5.0, help="seconds per raw run"
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--pg-workers",
        type=int,
        default=2,
        help="idemsync serve --workers on PostgreSQL",
    )
    parser.add_argument(
        "--no-projections",
        action="store_true",
        help="[projections] in_serve = false (default: the shipped true)",
    )
    parser.add_argument("--server-log-level", default="info")
    parser.add_argument(
        "--duplicates", type=int, default=5000, help="deliveries cycled as duplicates"
    )
    parser.add_argument(
        "--stored-events",
        type=int,
        default=0,
        help="PostgreSQL: also measure unique ingest after adding N events",
    )
    parser.add_argument("--prefill-processes", type=int, default=3)
    parser.add_argument(
        "--template-events",
        type=int,
        default=20_000,
        help="events written through SyncService, then cloned (--stored-events)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("IDEMSYNC_BENCH_PG")
        or os.environ.get("IDEMSYNC_TEST_PG")
        or DEFAULT_PG,
        help="PostgreSQL server URL without a database name",
    )


def options_of(args: argparse.Namespace) -> Options:
    return Options(
        duration=args.duration,
        connections=args.connections,
        raw_levels=args.raw_levels,
        raw_duration=args.raw_duration,
        threads=args.wrk_threads,
        pg_workers=args.pg_workers,
        in_serve=not args.no_projections,
        log_level=args.server_log_level,
        duplicates=args.duplicates,
        stored_events=args.stored_events,
        prefill_processes=args.prefill_processes,
        template_events=args.template_events,
        postgres=args.postgres,
    )


def wrk_problem() -> str | None:
    if shutil.which("wrk") is None:
        return "wrk not found: apt-get install wrk (Debian)"
    return None


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["noop-server"]:
        noop_server(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file")
    add_arguments(parser)
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if set(backends) - {"sqlite", "postgres"} or not backends:
        parser.error(f"bad --backends {args.backends!r}")
    problem = wrk_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    figures = measure(backends, options_of(args))
    print(table(figures))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
