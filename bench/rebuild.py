"""Rebuild benchmark: how fast the projections replay the log, next to how
fast the log can merely be read and decoded.

For each backend (a SQLite file in a temporary directory; a scratch
PostgreSQL database, created and dropped here) it records ``--events``
events through ``SyncService`` (each delivery decided with
``service.decide``, many decisions per ``service.commit``: group commit),
then measures:

* read+decode: ``recorder.select_notifications`` in pages of 5000 and
  ``mapper.to_domain_event`` for every notification, in events/s;
* replay: a fresh ``ProjectionRunner`` replaying the log into shadow tables
  (``projection.define(MetaData(), suffix)``) on fresh position names with
  ``step(..., batch_size=5000)``, for each of the four projections, in
  events applied per second (each projection reads only its topics).

The ratio replay / read+decode (target at least 0.3) says how much of a
rebuild's time the projections' own writes take. A table goes to stdout and
the figures to ``bench/results/rebuild-latest.json`` (untracked:
``.gitignore``; ``bench/run.py`` merges it into ``latest.json``).

    python -m bench.rebuild [--events 20000] [--backends sqlite,postgres]
                            [--output bench/results/rebuild-latest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData

from bench.databases import (
    add_backends_argument,
    add_postgres_argument,
    backends_of,
    postgres_database,
    sqlite_database,
    unreachable,
)
from bench.orders import customer_upsert, order_stream
from domain.application import Decision, SyncService
from domain.delivery import Delivery
from infrastructure.mappings.standard import map_standard
from infrastructure.persistence.database import Database
from projections import positions
from projections.catalog import all_projections
from projections.runner import ProjectionRunner

RESULTS = Path(__file__).resolve().parent / "results" / "rebuild-latest.json"
PAGE = 5000
TARGET_RATIO = 0.3
DECISIONS_PER_COMMIT = 500
SOURCE = "bench"


@dataclass
class Rate:
    """A count of events over a duration."""

    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, float]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 4),
            "events_per_second": round(self.per_second, 1),
        }


@dataclass
class Result:
    """One backend's figures."""

    backend: str
    events: int = 0
    deliveries: int = 0
    ingest: Rate | None = None
    read_decode: Rate | None = None
    replay: dict[str, Rate] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def replay_total(self) -> Rate:
        return Rate(
            sum(r.events for r in self.replay.values()),
            sum(r.seconds for r in self.replay.values()),
        )

    @property
    def ratio(self) -> float:
        if self.read_decode is None or not self.read_decode.per_second:
            return 0.0
        return self.replay_total.per_second / self.read_decode.per_second

    def to_json(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"backend": self.backend, "skipped": self.skipped}
        assert self.ingest is not None and self.read_decode is not None
        return {
            "backend": self.backend,
            "events": self.events,
            "deliveries": self.deliveries,
            "ingest_group_commit": self.ingest.to_json(),
            "read_decode": self.read_decode.to_json(),
            "replay": {
                "total": self.replay_total.to_json(),
                "per_projection": {n: r.to_json() for n, r in self.replay.items()},
            },
            "ratio": round(self.ratio, 3),
            "target_ratio": TARGET_RATIO,
            "meets_target": self.ratio >= TARGET_RATIO,
        }


# --------------------------------------------------------------------------
# Generating the log


def waves(seed: int, group: int) -> Iterator[list[bytes]]:
    """Commit batches forever: each wave of ``group`` new orders (and their
    customers) gives one batch per lifecycle step, each batch addressing
    every object at most once (a decision reads committed state only)."""
    rng = random.Random(seed)
    wave = 0
    while True:
        orders = [
            (f"ord_{wave:05d}_{i:04d}", f"cus_{wave:05d}_{i // 4:04d}")
            for i in range(group)
        ]
        customers = list(dict.fromkeys(customer for _, customer in orders))
        yield [customer_upsert(rng, customer, 1) for customer in customers]
        streams = [order_stream(rng, order, customer) for order, customer in orders]
        for step in range(4):
            yield [stream[step] for stream in streams]
        wave += 1


def generate(service: SyncService, events: int) -> tuple[int, int]:
    """Record at least ``events`` events; returns (events, deliveries)."""
    group = max(5, min(DECISIONS_PER_COMMIT, events // 9))
    deliveries = 0
    head = 0
    for batch in waves(seed=20261102, group=group):
        decisions: list[Decision] = []
        for body in batch:
            delivery = Delivery(
                SOURCE, f"msg_{uuid.uuid4().hex}", datetime.now(UTC), body
            )
            decisions.append(service.decide(delivery, map_standard(body, {})))
        service.commit(decisions)
        deliveries += len(decisions)
        head = int(service.recorder.max_notification_id() or 0)
        if head >= events:
            return head, deliveries
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------
# Measuring


def read_and_decode(service: SyncService) -> Rate:
    """Every notification, in pages of ``PAGE``, decoded to a domain event."""
    count = 0
    start = 1
    began = time.perf_counter()
    while True:
        page = service.recorder.select_notifications(start=start, limit=PAGE)
        for notification in page:
            service.mapper.to_domain_event(notification)
        count += len(page)
        if len(page) < PAGE:
            break
        start = page[-1].id + 1
    return Rate(count, time.perf_counter() - began)


def replay(service: SyncService, database: Database) -> dict[str, Rate]:
    """Each projection replayed from the start into its own shadow tables,
    on fresh position names; dropped afterwards."""
    engine = database.engine()
    runner = ProjectionRunner(service, engine, all_projections(), batch_size=PAGE)
    head = runner.head()
    token = uuid.uuid4().hex[:8]
    suffix = f"_bench_{token}"
    rates = {}
    for name, projection in runner.projections.items():
        metadata = MetaData()
        tables = projection.define(metadata, suffix)
        metadata.create_all(engine)
        position_name = f"bench_{token}_{name}"
        applied = 0
        began = time.perf_counter()
        more = True
        while more:
            count, more = runner.step(
                name,
                tables=tables,
                position_name=position_name,
                batch_size=PAGE,
                up_to=head,
            )
            applied += count
        rates[name] = Rate(applied, time.perf_counter() - began)
        metadata.drop_all(engine)
        with engine.begin() as conn:
            positions.remove(conn, position_name)
    return rates


def measure(backend: str, database: Database, events: int) -> Result:
    database.upgrade()
    service = SyncService(env=database.eventsourcing_env())
    try:
        result = Result(backend)
        began = time.perf_counter()
        result.events, result.deliveries = generate(service, events)
        result.ingest = Rate(result.events, time.perf_counter() - began)
        result.read_decode = read_and_decode(service)
        result.replay = replay(service, database)
        return result
    finally:
        service.close()
        database.close()


def run_backend(backend: str, events: int, server: str) -> Result:
    if backend == "sqlite":
        with sqlite_database() as database:
            return measure(backend, database, events)
    error = unreachable(server)
    if error is not None:
        return Result(backend, skipped=f"not reachable at {server}: {error}".strip())
    with postgres_database(server) as database:
        return measure(backend, database, events)


# --------------------------------------------------------------------------
# Reporting


def table(results: list[Result]) -> str:
    """The figures as a fixed-width text table."""
    header = (
        f"{'backend':<9}{'events':>8}  {'ingest ev/s':>12}{'read+decode ev/s':>18}"
        f"{'replay ev/s':>13}{'ratio':>8}  target {TARGET_RATIO}"
    )
    lines = [header, "-" * len(header)]
    for result in results:
        if result.skipped is not None:
            lines.append(f"{result.backend:<9}skipped: {result.skipped}")
            continue
        assert result.ingest is not None and result.read_decode is not None
        verdict = "ok" if result.ratio >= TARGET_RATIO else "BELOW"
        lines.append(
            f"{result.backend:<9}{result.events:>8}  "
            f"{result.ingest.per_second:>12,.0f}"
            f"{result.read_decode.per_second:>18,.0f}"
            f"{result.replay_total.per_second:>13,.0f}"
            f"{result.ratio:>8.2f}  {verdict}"
        )
        for name, rate in result.replay.items():
            ratio = rate.per_second / result.read_decode.per_second
            lines.append(
                f"  {name:<24}{rate.events:>7} applied in {rate.seconds:6.2f} s"
                f"{rate.per_second:>10,.0f} ev/s  ratio {ratio:.2f}"
            )
    return "\n".join(lines)


def report(results: list[Result], requested: int) -> dict[str, Any]:
    return {
        "benchmark": "rebuild",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "events_requested": requested,
        "page_size": PAGE,
        "decisions_per_commit": DECISIONS_PER_COMMIT,
        "target_ratio": TARGET_RATIO,
        "definitions": {
            "read_decode": "select_notifications pages of 5000 + "
            "mapper.to_domain_event, every event of the log",
            "replay": "ProjectionRunner.step(batch_size=5000) into shadow "
            "tables; events applied by all four projections / their time",
            "ratio": "replay events/s / read_decode events/s",
        },
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "eventsourcing": version("eventsourcing"),
            "sqlalchemy": version("sqlalchemy"),
            "psycopg": version("psycopg"),
        },
        "results": [result.to_json() for result in results],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="log size")
    add_backends_argument(parser)
    add_postgres_argument(parser)
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file")
    args = parser.parse_args(argv)
    backends = backends_of(args.backends)
    if not backends or args.events < 1:
        parser.error(f"bad --backends {args.backends!r} or --events {args.events}")

    results = []
    for backend in backends:
        print(f"{backend}: recording {args.events} events...", file=sys.stderr)
        results.append(run_backend(backend, args.events, args.postgres))
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report(results, args.events), indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
