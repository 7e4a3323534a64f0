"""CPU and memory of process groups during a run, from ``/proc``
(``tests/procfs.py``): the server's process tree, PostgreSQL's processes of
the benchmark's database, the load generator."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from bench.ingest.figures import Usage
from tests import procfs

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
        fields = procfs.stat_fields(pid)
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
