"""The ceiling: raw transactions writing exactly what one unique delivery
writes, one delivery per transaction; raw psycopg from N processes (with and
without the recorder's table lock), ``pgbench`` (a C client) and raw
sqlite3 (one writer)."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import re
import resource
import sqlite3
import statistics
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.composite import CompositeInfo, register_composite

from bench.ingest.figures import Run
from bench.ingest.sampling import Sampler, postgres_pids
from bench.ingest.templates import LEDGER_AT, Template, fresh_rows
from infrastructure.persistence.ledger import LedgerWriter
from infrastructure.persistence.rows import insert_deliveries_sql

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


PGBENCH_SCRIPT = Path(__file__).resolve().parents[1] / "pgbench_ceiling.sql"
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
