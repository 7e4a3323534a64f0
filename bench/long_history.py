"""Long-history benchmark: deciding a delivery to an order with 10,000 events,
next to deciding one to a new order, without and with snapshots.

For each backend (a SQLite file in a temporary directory; a scratch
PostgreSQL database, created and dropped here) it migrates the store and
records, through ``SyncService``:

* ``new``: an order just created (``order.created``: version 2);
* ``long``: an order created, then ``--events`` (10,000) ``order.paid``
  events, each decided by the domain (``Order.execute``, as from its own
  delivery, with increasing sequences), saved 1,000 per transaction; its
  version is 10,002, two events past the snapshot at 10,000 (best case);
* ``long-worst``: the same just below the next snapshot (10,019 with
  the interval of 20): the most events a load ever reads after one (worst
  case). ``--interval`` measures another interval than ``SyncService``'s.

It then times ``service.decide`` (load the order, decide an
``order.shipped``; nothing written) ``--repeat`` times for each, round-robin
over the cases, with the service as it was before snapshots (every load
replays every event) and as it is now (the latest snapshot and the events
after it), and prints the median and the slowest decile in milliseconds,
and each one's ratio to the new order's median; and what taking one
snapshot costs (paid once per interval events of an object, after the
commit). The figures also go to ``--output`` as JSON.

    python -m bench.long_history [--events 10000] [--repeat 20] [--interval N]
                                 [--backends sqlite,postgres]
                                 [--output bench/results/long_history.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

from eventsourcing.application import Application

from bench.databases import (
    add_backends_argument,
    add_postgres_argument,
    backends_of,
    postgres_database,
    sqlite_database,
    unreachable,
)
from domain.application import SyncService
from domain.commands import CreateOrder, MarkPaid, MarkShipped
from domain.delivery import Delivery, Outcome
from domain.order import Order
from infrastructure.persistence.database import Database

RESULTS = Path(__file__).resolve().parent / "results" / "long_history.json"
SOURCE = "bench"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BATCH = 1_000


class BeforeSnapshots(SyncService):
    """``SyncService`` as it was before snapshots: loads replay every event."""

    name = "idemsync"
    snapshotting_intervals: ClassVar[dict[Any, int]] = {}


def created(order_id: str) -> CreateOrder:
    return CreateOrder(
        order_id=order_id,
        customer_id="cus_bench",
        currency="EUR",
        total_cents=10**9,
        sequence=1,
        occurred_at=START,
    )


def delivery(key: str) -> Delivery:
    return Delivery(SOURCE, key, START, b"{}")


def record(service: SyncService, order_id: str, paid: int) -> int:
    """Create ``order_id`` and append ``paid`` payments; its version."""
    answer = service.receive(delivery(f"create-{order_id}"), [created(order_id)])
    assert answer.outcome is Outcome.APPLIED, answer
    order = cast(Order, service.find("order", order_id))
    for number in range(paid):
        sequence = number + 2
        payment = MarkPaid(
            order_id=order_id,
            amount_cents=sequence,
            sequence=sequence,
            occurred_at=START + timedelta(seconds=sequence),
        )
        order.execute(payment, SOURCE, f"pay-{order_id}-{sequence}")
        if len(order.pending_events) == BATCH or number == paid - 1:
            service.save(order)
    return order.version


def decide_ms(service: SyncService, order_id: str, attempt: int) -> float:
    """Milliseconds of ``service.decide`` for a new ``order.shipped``."""
    shipped = MarkShipped(
        order_id=order_id,
        carrier="DHL",
        tracking_number="T1",
        sequence=10**9,
        occurred_at=START + timedelta(days=1),
    )
    began = time.perf_counter()
    decision = service.decide(delivery(f"ship-{attempt}"), [shipped])
    elapsed = (time.perf_counter() - began) * 1000
    assert decision.answer.outcome is Outcome.APPLIED, decision.answer
    return elapsed


def take_snapshots_ms(
    service: SyncService, order_id: str, interval: int, repeat: int
) -> list[float]:
    """Milliseconds of taking one snapshot as ``save`` does after every
    ``interval`` events (read the previous snapshot and the events since,
    store the new one), at versions between the existing snapshots."""
    originator_id = Order.create_id(order_id)
    times = []
    for number in range(1, repeat + 1):
        version = number * interval + interval - 1
        gc.collect()
        began = time.perf_counter()
        Application.take_snapshot(service, originator_id, version=version)
        times.append((time.perf_counter() - began) * 1000)
    return times


def with_interval(interval: int) -> type[SyncService]:
    """``SyncService``, snapshotting every ``interval`` events instead."""

    class Snapshotting(SyncService):
        name = "idemsync"
        snapshotting_intervals: ClassVar[dict[Any, int]] = {
            kind: interval for kind in SyncService.snapshotting_intervals
        }

    return Snapshotting


def measure(
    backend: str, database: Database, events: int, repeat: int, interval: int
) -> dict[str, Any]:
    database.upgrade()
    env = database.eventsourcing_env()
    service = with_interval(interval)(env=env)
    before = BeforeSnapshots(env=env)
    # The version just below the next snapshot: the most events after one.
    worst = ((events + 2) // interval + 1) * interval - 1
    try:
        print(f"{backend}: recording versions {events + 2}, {worst}", file=sys.stderr)
        began = time.perf_counter()
        orders = {
            "new": ("ord_new", record(service, "ord_new", 0)),
            "long": ("ord_long", record(service, "ord_long", events)),
            "long-worst": ("ord_worst", record(service, "ord_worst", worst - 2)),
        }
        recording = time.perf_counter() - began
        apps = {"before": before, "after": service}
        times: dict[str, list[float]] = {
            f"{order} {label}": [] for label in apps for order in orders
        }
        # Round-robin over the orders, so that a noisy moment hits each alike;
        # the first round warms the connections up. The garbage of a replay
        # is collected between decisions, not during the next one.
        for label, app in apps.items():
            for attempt in range(repeat + 1):
                for order, (order_id, _) in orders.items():
                    gc.collect()
                    elapsed = decide_ms(app, order_id, attempt)
                    if attempt:
                        times[f"{order} {label}"].append(elapsed)
        snapshot_ms = take_snapshots_ms(service, "ord_worst", interval, repeat)
        rows: dict[str, Any] = {}
        for name, measured in times.items():
            order, label = name.split(" ")
            rows[name] = {
                "version": orders[order][1],
                "snapshots": label == "after",
                "median_ms": statistics.median(measured),
                "p90_ms": statistics.quantiles(measured, n=10)[-1],
                "ratio_to_new": statistics.median(measured)
                / statistics.median(times[f"new {label}"]),
            }
        return {
            "backend": backend,
            "events": events,
            "snapshot_interval": interval,
            "recording_seconds": recording,
            "take_snapshot_median_ms": statistics.median(snapshot_ms),
            "rows": rows,
        }
    finally:
        service.close()
        before.close()
        database.close()


def run_backend(
    backend: str, events: int, repeat: int, interval: int, server: str
) -> dict[str, Any]:
    if backend == "sqlite":
        with sqlite_database() as database:
            return measure(backend, database, events, repeat, interval)
    error = unreachable(server)
    if error is not None:
        return {"backend": backend, "skipped": f"not reachable at {server}: {error}"}
    with postgres_database(server) as database:
        return measure(backend, database, events, repeat, interval)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'backend':<9} {'order':<10} {'version':>8} {'snapshots':<10} "
        f"{'median ms':>10} {'p90 ms':>8} {'x new':>7}"
    ]
    for result in results:
        if "skipped" in result:
            lines.append(f"{result['backend']:<9} skipped: {result['skipped']}")
            continue
        for name, row in result["rows"].items():
            order, label = name.split(" ")
            lines.append(
                f"{result['backend']:<9} {order:<10} {row['version']:>8} "
                f"{'no' if label == 'before' else 'yes':<10} "
                f"{row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} "
                f"{row['ratio_to_new']:>7.1f}"
            )
        lines.append(
            f"{result['backend']:<9} taking one snapshot (every "
            f"{result['snapshot_interval']} events of an object, after the "
            f"commit): {result['take_snapshot_median_ms']:.2f} ms median"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="long order")
    parser.add_argument("--repeat", type=int, default=20, help="decisions timed")
    parser.add_argument(
        "--interval",
        type=int,
        default=SyncService.snapshotting_intervals[Order],
        help="snapshot interval to measure (default: SyncService's)",
    )
    add_backends_argument(parser)
    add_postgres_argument(parser)
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file")
    args = parser.parse_args(argv)
    backends = backends_of(args.backends)
    if not backends or min(args.events, args.repeat - 1, args.interval) < 1:
        parser.error(
            f"bad --backends {args.backends!r}, --events, --repeat or --interval"
        )

    results = [
        run_backend(backend, args.events, args.repeat, args.interval, args.postgres)
        for backend in backends
    ]
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"results": results}, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
