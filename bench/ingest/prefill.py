"""``--stored-events``: the template store written through
``SyncService.decide``/``commit`` before ``bench/bulk_store.py`` clones it,
and the counts of a store."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.ingest.signing import SOURCE
from bench.orders import customer_upsert, order_stream
from infrastructure.persistence.database import Database

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
