"""Audit benchmark: the audit trail's answers on a store of a million events.

It fills a scratch PostgreSQL database (created here, dropped afterwards
unless ``--keep``) through the engine, exactly as deliveries are recorded in
production: each delivery's body goes through the ``standard`` mapping and
``SyncService.decide``, and ``SyncService.commit`` writes many decisions in
one transaction (group commit), so every event has its ``event_audit`` row
and its place in its aggregate's hash chain. Two kinds of traffic:

* bulk: waves of ``--batch`` new orders (and a customer per four orders),
  each order created, paid, then shipped and delivered or cancelled and
  refunded; one commit per lifecycle step of a wave (``--batch`` deliveries);
* one long-lived order, ``ord_long``: created, then ``order.paid`` again and
  again with a growing sequence and amount (each one applied: newer, same
  status, a new ``paid_cents``), one delivery per commit, interleaved with the
  bulk commits until it has ``--long`` events. Its deliveries are decided by a
  second ``SyncService`` with eventsourcing's aggregate cache
  (``AGGREGATE_CACHE_MAXSIZE``, fast-forwarded from the store on every load):
  without it each delivery would replay the whole history (the
  ``state now`` row shows what that costs), and the fill would be quadratic.
  The events it records are the same.

Then, with ``infrastructure.audit.trail.AuditTrail`` on a production-configured
service, it times (p50/p99 over repeated runs, after one warm-up run):
``events_of`` (first page, and the whole history in default pages), the
``as_of`` index lookup ``version_at`` and the full ``state(as_of=...)`` at
random recorded times early/middle/late in the long order's life, the same
``state(as_of=...)`` of small orders (the ratio says whether history length
matters), ``delivery(source, key)``, and the global ``log()`` read rate. It
prints ``EXPLAIN (ANALYZE, BUFFERS)`` of the ``as_of`` query and writes the
figures to ``bench/results/audit-latest.json`` (untracked: ``.gitignore``).

    python -m bench.audit [--events 1000000] [--long 10000] [--keep]
                          [--postgres URL] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from bench.databases import add_postgres_argument, unreachable
from bench.orders import START, envelope, order_stream
from domain.application import Decision, SyncService
from domain.delivery import Delivery
from domain.order import Order
from infrastructure.audit.trail import AuditTrail
from infrastructure.mappings.standard import map_standard
from infrastructure.persistence.database import Database

RESULTS = Path(__file__).resolve().parent / "results" / "audit-latest.json"
KEPT_DATABASE = "idemsync_bench_audit"
SOURCE = "bench"
LONG_ORDER = "ord_long"
SEGMENTS = {"early": (0.0, 0.1), "middle": (0.45, 0.55), "late": (0.9, 1.0)}
"""Where in the long order's recorded life the ``as_of`` times are drawn."""

VERSION_AT_SQL = (
    "SELECT max(originator_version) FROM event_audit "
    "WHERE originator_id = :id AND recorded_at <= :at"
)
"""The query of ``AuditTrail.version_at`` (kept equal to it), for EXPLAIN."""
INDEX_USED = re.compile(
    r"(?:Index (?:Only )?Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)"
)


# --------------------------------------------------------------------------
# Filling the store


def bulk_batches(rng: random.Random, group: int) -> Iterator[list[bytes]]:
    """Commit batches forever: per wave of ``group`` new orders, one batch of
    their customers, then one per lifecycle step (an object at most once per
    batch: a decision reads committed state only)."""
    wave = 0
    while True:
        orders = [
            (f"ord_{wave:06d}_{i:04d}", f"cus_{wave:06d}_{i // 4:04d}")
            for i in range(group)
        ]
        customers = list(dict.fromkeys(customer for _, customer in orders))
        yield [
            envelope(
                "customer.upserted",
                START,
                customer_id=customer,
                name=f"Customer {customer[-4:]}",
                email=f"{customer}@example.com",
                sequence=1,
            )
            for customer in customers
        ]
        steps = [order_stream(rng, order, customer) for order, customer in orders]
        for step in range(4):
            yield [order[step] for order in steps]
        wave += 1


def long_delivery(index: int) -> bytes:
    """The long order's ``index``-th delivery: created, then paid again and
    again (a growing total, a growing sequence: each one applied)."""
    moment = START + timedelta(seconds=index)
    if index == 0:
        return envelope(
            "order.created",
            moment,
            order_id=LONG_ORDER,
            customer_id="cus_long",
            currency="EUR",
            total_cents=100,
            sequence=1,
        )
    return envelope(
        "order.paid",
        moment,
        order_id=LONG_ORDER,
        amount_cents=100 * index,
        sequence=index + 1,
    )


def bulk_key(index: int) -> str:
    return f"bulk_{index:09d}"


def long_key(index: int) -> str:
    return f"long_{index:07d}"


@dataclass
class Fill:
    """How the store was filled."""

    events: int = 0
    deliveries: int = 0
    bulk_deliveries: int = 0
    long_deliveries: int = 0
    long_events: int = 0
    commits: int = 0
    group: int = 0
    seconds: float = 0.0
    filled_at: str = ""
    reused: bool = False

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "deliveries": self.deliveries,
            "bulk_deliveries": self.bulk_deliveries,
            "long_deliveries": self.long_deliveries,
            "long_events": self.long_events,
            "commits": self.commits,
            "bulk_orders_per_commit": self.group,
            "seconds": round(self.seconds, 1),
            "events_per_second": round(self.per_second, 1),
            "filled_at": self.filled_at,
            "reused": self.reused,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Fill:
        return Fill(
            events=data["events"],
            deliveries=data["deliveries"],
            bulk_deliveries=data["bulk_deliveries"],
            long_deliveries=data["long_deliveries"],
            long_events=data["long_events"],
            commits=data["commits"],
            group=data["bulk_orders_per_commit"],
            seconds=data["seconds"],
            filled_at=data["filled_at"],
            reused=True,
        )


def decide(service: SyncService, key: str, body: bytes) -> Decision:
    delivery = Delivery(SOURCE, key, datetime.now(UTC), body)
    return service.decide(delivery, map_standard(body, {}))


def fill(database: Database, events: int, long: int, batch: int) -> Fill:
    """Record at least ``events`` events, ``long`` of them on ``ord_long``."""
    env = database.eventsourcing_env()
    bulk = SyncService(env=env)
    cached = SyncService(env={**env, "AGGREGATE_CACHE_MAXSIZE": "16"})
    rng = random.Random(20261102)
    # The long order: Tracked + Created, then one event per delivery; each
    # delivery also issues its receipt. A wave of g orders records
    # 9 g + 3 ceil(g / 4) events in 5 commits.
    long_total = max(long - 1, 1)
    bulk_events = max(events - 2 * long_total, 0)
    group = max(5, min(batch, bulk_events // 50))
    commits = max(1, round(bulk_events * 5 / (9 * group + 3 * math.ceil(group / 4))))
    per_commit = math.ceil(long_total / commits)
    result = Fill(group=group)
    head = 0
    began = time.perf_counter()
    reported = began
    batches = bulk_batches(rng, group)
    try:
        while head < events or result.long_deliveries < long_total:
            if head < events:
                decisions = []
                for body in next(batches):
                    key = bulk_key(result.bulk_deliveries)
                    decisions.append(decide(bulk, key, body))
                    result.bulk_deliveries += 1
                bulk.commit(decisions)
                result.commits += 1
            for _ in range(per_commit):
                if result.long_deliveries >= long_total:
                    break
                index = result.long_deliveries
                body = long_delivery(index)
                cached.commit([decide(cached, long_key(index), body)])
                result.long_deliveries += 1
                result.commits += 1
            head = int(bulk.recorder.max_notification_id() or 0)
            now = time.perf_counter()
            if now - reported > 15:
                reported = now
                rate = head / (now - began)
                eta = max(events - head, 0) / rate if rate else 0.0
                print(
                    f"  {head:,}/{events:,} events, {rate:,.0f} ev/s, "
                    f"ord_long {result.long_deliveries + 1:,} events, "
                    f"ETA {eta / 60:.1f} min",
                    file=sys.stderr,
                    flush=True,
                )
        result.seconds = time.perf_counter() - began
    finally:
        bulk.close()
        cached.close()
    result.events = head
    result.deliveries = result.bulk_deliveries + result.long_deliveries
    result.long_events = result.long_deliveries + 1
    result.filled_at = datetime.now(UTC).isoformat(timespec="seconds")
    return result


# --------------------------------------------------------------------------
# The scratch database


def exists(server: str, name: str) -> bool:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    return found is not None


def drop(server: str, name: str) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def kept_fill(server: str, name: str, events: int, long: int) -> Fill | None:
    """The fill of a kept database when it holds at least what is asked."""
    if not exists(server, name):
        return None
    with psycopg.connect(f"{server}/{name}") as conn:
        try:
            row = conn.execute("SELECT info FROM bench_audit_fill").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
    if row is None:
        return None
    found = Fill.from_json(row[0])
    if found.events < events or found.long_events < long:
        return None
    return found


def remember(database: Database, result: Fill) -> None:
    with database.engine().begin() as conn:
        conn.execute(text("CREATE TABLE bench_audit_fill (info jsonb NOT NULL)"))
        conn.execute(
            text("INSERT INTO bench_audit_fill (info) VALUES (CAST(:info AS jsonb))"),
            {"info": json.dumps(result.to_json())},
        )
        conn.execute(text("ANALYZE"))


@contextmanager
def scratch(
    server: str, events: int, long: int, batch: int, keep: bool
) -> Iterator[tuple[Database, Fill]]:
    """A filled database: a fresh one (dropped afterwards), or with ``keep``
    the kept one when it is big enough (kept afterwards)."""
    name = KEPT_DATABASE if keep else f"idemsync_bench_audit_{os.getpid()}"
    found = kept_fill(server, name, events, long) if keep else None
    if found is None:
        drop(server, name)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
    database = Database(f"{server}/{name}", pool_size=2)
    try:
        if found is None:
            database.upgrade()
            print(
                f"filling {name}: {events:,} events, {long:,} on {LONG_ORDER}...",
                file=sys.stderr,
                flush=True,
            )
            found = fill(database, events, long, batch)
            remember(database, found)
        else:
            print(f"reusing {name} (--keep)", file=sys.stderr)
        yield database, found
    finally:
        database.close()
        if not keep:
            drop(server, name)


# --------------------------------------------------------------------------
# Measuring


@dataclass
class Row:
    """One measurement: ``runs`` timings of an operation that reads
    ``events`` events (a mean when it varies; 0 for an index lookup) and
    resolves the long order's ``version`` (a mean; None when it does not)."""

    name: str
    events: float
    version: float | None
    seconds: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]

    @property
    def per_second(self) -> float | None:
        return self.events / self.p50 if self.events and self.p50 > 0 else None

    def to_json(self) -> dict[str, Any]:
        rate = self.per_second
        return {
            "name": self.name,
            "events": round(self.events, 1),
            "version": None if self.version is None else round(self.version, 1),
            "runs": len(self.seconds),
            "p50_ms": round(self.p50 * 1000, 3),
            "p99_ms": round(self.p99 * 1000, 3),
            "mean_ms": round(statistics.fmean(self.seconds) * 1000, 3),
            "events_per_second_at_p50": None if rate is None else round(rate, 1),
        }


Read = tuple[float, float | None]
"""What an operation read: events, and the version it resolved (or None)."""


def timed(name: str, runs: int, operation: Callable[[], Read]) -> Row:
    """``operation()`` ``runs`` times after one warm-up run."""
    operation()
    seconds: list[float] = []
    events: list[float] = []
    versions: list[float] = []
    for _ in range(runs):
        began = time.perf_counter()
        read, resolved = operation()
        seconds.append(time.perf_counter() - began)
        events.append(read)
        if resolved is not None:
            versions.append(resolved)
    version = statistics.fmean(versions) if versions else None
    return Row(name, statistics.fmean(events), version, seconds)


class Audit:
    """The measurements, on a production-configured service."""

    def __init__(self, database: Database, filled: Fill, seed: int) -> None:
        self.database = database
        self.filled = filled
        self.engine = database.engine()
        self.service = SyncService(env=database.eventsourcing_env())
        self.trail = AuditTrail(self.engine, self.service)
        self.rng = random.Random(seed)
        self.long_id = Order.create_id(LONG_ORDER)
        with self.engine.connect() as conn:
            first, last, count = conn.execute(
                text(
                    "SELECT min(recorded_at), max(recorded_at), count(*) "
                    "FROM event_audit WHERE originator_id = :id"
                ),
                {"id": self.long_id},
            ).one()
            self.head = int(
                conn.execute(
                    text("SELECT max(notification_id) FROM event_audit")
                ).scalar_one()
            )
        self.first: datetime = first
        self.last: datetime = last
        self.long_events = int(count)

    def close(self) -> None:
        self.service.close()

    def moment(self, segment: str) -> datetime:
        low, high = SEGMENTS[segment]
        span = (self.last - self.first).total_seconds()
        return self.first + timedelta(seconds=span * self.rng.uniform(low, high))

    def rows(self, log_events: int) -> list[Row]:
        rows = [
            timed("events_of first page", 50, self.first_page),
            timed("events_of full walk", 5, self.walk),
        ]
        for segment in SEGMENTS:
            rows.append(timed(f"version_at {segment}", 200, partial(self.at, segment)))
        for segment in SEGMENTS:
            rows.append(
                timed(f"state as_of {segment}", 20, partial(self.state_at, segment))
            )
        rows.append(timed("state now (long)", 10, lambda: self.state(LONG_ORDER)))
        rows.append(
            timed(
                "state as_of small order",
                200,
                lambda: self.state(self.small_order(), datetime.now(UTC)),
            )
        )
        rows.append(timed("delivery lookup", 200, self.delivery))
        count = min(log_events, self.head)
        rows.append(timed(f"log read {count:,}", 3, lambda: self.read_log(count)))
        return rows

    def first_page(self) -> Read:
        page = self.trail.events_of("order", LONG_ORDER)
        assert page is not None
        return len(page["events"]), None

    def walk(self) -> Read:
        """The whole history of the long order, page after page."""
        after, seen = 0, 0
        while True:
            page = self.trail.events_of("order", LONG_ORDER, after=after)
            assert page is not None
            seen += len(page["events"])
            if page["next_cursor"] is None:
                return seen, None
            after = page["next_cursor"]

    def at(self, segment: str) -> Read:
        found = self.trail.version_at(self.long_id, self.moment(segment))
        assert found is not None
        return 0, found

    def state_at(self, segment: str) -> Read:
        return self.state(LONG_ORDER, self.moment(segment))

    def state(self, object_id: str, at: datetime | None = None) -> Read:
        """The order as of ``at`` (or now): its events are replayed."""
        found = self.trail.state("order", object_id, as_of=at)
        assert found is not None, (object_id, at)
        version = float(found["aggregate"]["version"])
        return version, version

    def small_order(self) -> str:
        group = self.filled.group
        waves = self.filled.bulk_deliveries // (4 * group + math.ceil(group / 4))
        wave = self.rng.randrange(max(1, waves))
        return f"ord_{wave:06d}_{self.rng.randrange(group):04d}"

    def delivery(self) -> Read:
        """A random delivery, nine in ten of them bulk ones."""
        if self.rng.random() < 0.9:
            key = bulk_key(self.rng.randrange(self.filled.bulk_deliveries))
        else:
            key = long_key(self.rng.randrange(self.filled.long_deliveries))
        found = self.trail.delivery(SOURCE, key)
        assert found is not None, key
        return len(found["events"]), None

    def read_log(self, count: int) -> Read:
        after = self.rng.randrange(max(1, self.head - count + 1))
        return sum(1 for _ in self.trail.log(after=after, limit=count)), None

    def explain(self) -> dict[str, Any]:
        """The plan of the ``as_of`` query for a late and an early time, and
        the index it uses."""
        plans = {}
        with self.engine.connect() as conn:
            for segment in ("late", "early"):
                plan = conn.execute(
                    text("EXPLAIN (ANALYZE, BUFFERS) " + VERSION_AT_SQL),
                    {"id": self.long_id, "at": self.moment(segment)},
                ).scalars()
                plans[segment] = list(plan)
        indexes = sorted(
            {
                found.group(1)
                for line in plans["late"] + plans["early"]
                for found in [INDEX_USED.search(line)]
                if found
            }
        )
        seq_scan = any("Seq Scan" in line for line in plans["late"] + plans["early"])
        return {
            "query": VERSION_AT_SQL,
            "plans": plans,
            "indexes": indexes,
            "seq_scan": seq_scan,
        }

    def sizes(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {
                name: conn.execute(
                    text("SELECT pg_size_pretty(pg_total_relation_size(:t))"),
                    {"t": name},
                ).scalar_one()
                for name in ("idemsync_events", "event_audit", "deliveries")
            }


# --------------------------------------------------------------------------
# Reporting


def table(rows: list[Row]) -> Table:
    out = Table(title="audit on the filled store (PostgreSQL)")
    for name in ("measurement", "events", "version", "runs", "p50 ms", "p99 ms"):
        out.add_column(name, justify="left" if name == "measurement" else "right")
    out.add_column("events/s at p50", justify="right")
    for row in rows:
        rate = row.per_second
        out.add_row(
            row.name,
            f"{row.events:,.0f}" if row.events else "-",
            "-" if row.version is None else f"{row.version:,.0f}",
            str(len(row.seconds)),
            f"{row.p50 * 1000:,.2f}",
            f"{row.p99 * 1000:,.2f}",
            "-" if rate is None else f"{rate:,.0f}",
        )
    return out


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "eventsourcing": version("eventsourcing"),
        "sqlalchemy": version("sqlalchemy"),
        "psycopg": version("psycopg"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="store size")
    parser.add_argument(
        "--long", type=int, default=10_000, help="events of the long-lived order"
    )
    parser.add_argument(
        "--batch", type=int, default=500, help="most new orders per bulk wave"
    )
    parser.add_argument(
        "--log-events", type=int, default=100_000, help="events per log() read"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help=f"keep the database ({KEPT_DATABASE}) and reuse it when big enough",
    )
    add_postgres_argument(parser)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file")
    args = parser.parse_args(argv)
    if args.events < 1 or args.long < 2 or args.events < 2 * args.long:
        parser.error("need --events >= 2 * --long and --long >= 2")

    console = Console(width=110, soft_wrap=True)
    error = unreachable(args.postgres)
    if error is not None:
        print(f"PostgreSQL not reachable at {args.postgres}: {error}", file=sys.stderr)
        return 2
    with scratch(args.postgres, args.events, args.long, args.batch, args.keep) as (
        database,
        filled,
    ):
        audit = Audit(database, filled, args.seed)
        try:
            rows = audit.rows(args.log_events)
            plan = audit.explain()
            sizes = audit.sizes()
        finally:
            audit.close()

    how = "reused (--keep), filled" if filled.reused else "filled"
    console.print(
        f"store: {filled.events:,} events from {filled.deliveries:,} deliveries "
        f"in {filled.commits:,} commits; {LONG_ORDER} has {audit.long_events:,} "
        f"events over {(audit.last - audit.first).total_seconds():,.0f} s "
        f"of recorded time"
    )
    console.print(
        f"generated: {filled.bulk_deliveries:,} bulk deliveries (waves of "
        f"{filled.group} new orders and a customer per four: created, paid, "
        f"shipped + delivered or cancelled + refunded; one commit per step) and "
        f"{filled.long_deliveries:,} to {LONG_ORDER} (created, then order.paid "
        "with a growing sequence, one delivery per commit between the bulk "
        "commits, decided by a SyncService with the aggregate cache), each "
        "through the standard mapping and SyncService.decide"
    )
    console.print(
        f"{how} through SyncService.decide + commit in {filled.seconds:,.1f} s: "
        f"{filled.per_second:,.0f} events/s"
    )
    console.print(
        "sizes: " + ", ".join(f"{name} {size}" for name, size in sizes.items())
    )
    console.print(table(rows))
    by_name = {row.name: row for row in rows}
    small = by_name["state as_of small order"].p50
    ratios = {
        f"state as_of {segment} / small order": by_name[f"state as_of {segment}"].p50
        / small
        for segment in SEGMENTS
    }
    ratios["version_at late / early"] = (
        by_name["version_at late"].p50 / by_name["version_at early"].p50
    )
    for name, ratio in ratios.items():
        console.print(f"ratio {name}: {ratio:,.1f}")
    for segment in ("late", "early"):
        console.print(f"EXPLAIN (ANALYZE, BUFFERS), as_of {segment}:")
        for line in plan["plans"][segment]:
            console.print("  " + line, highlight=False, markup=False)
    uses = ", ".join(plan["indexes"]) or "no index"
    scan = "; a sequential scan" if plan["seq_scan"] else ""
    console.print(f"as_of query plan: {uses}{scan}")

    report = {
        "benchmark": "audit",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "requested": {"events": args.events, "long": args.long, "batch": args.batch},
        "store": {
            "events": audit.head,
            "long_order": LONG_ORDER,
            "long_order_events": audit.long_events,
            "long_order_recorded_from": audit.first.isoformat(),
            "long_order_recorded_to": audit.last.isoformat(),
            "sizes": sizes,
        },
        "fill": filled.to_json(),
        "measurements": [row.to_json() for row in rows],
        "ratios": {name: round(ratio, 2) for name, ratio in ratios.items()},
        "explain": plan,
        "environment": environment(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
