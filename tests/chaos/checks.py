"""The end of a chaos run: the store, the read models and what the partner
was told, against the ground truth computed from the script alone."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, text

from domain.commands import CUSTOMER_FIELDS
from domain.customer import Customer
from domain.order import Order
from projections.catalog import all_projections
from projections.customers import CustomersProjection
from projections.orders import OrdersProjection
from projections.positions import positions as positions_table
from projections.revenue import RevenueProjection
from tests.chaos.script import Chunk
from tests.chaos.simulator import ATTEMPT_HEADER, Traffic
from tests.histories import SOURCE, ObjectKey
from tests.integration.test_projection_runner import (
    expected_customers,
    expected_orders,
    expected_revenue,
    json_text,
    order_row,
    receipt_outcomes,
    source_stats,
    table_rows,
)
from tests.partner import auth
from tests.store import Store

EVENTS_NOT_CAUSED = {"Parked", "Released", "Tracked"}
"""Events that record a delivery's passage, not its effect."""
SHOWN = 5
"""Examples shown per failed check."""


@dataclass(frozen=True)
class Result:
    name: str
    passed: bool
    detail: str
    seconds: float = 0.0


def result(name: str, problems: Sequence[str], ok: str) -> Result:
    if not problems:
        return Result(name, True, ok)
    shown = "; ".join(problems[:SHOWN])
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return Result(name, False, f"{len(problems)} problem(s): {shown}{more}")


def first_answer(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The first answer a 2xx body carries: itself, or ``first`` of a
    duplicate."""
    return body["first"] if body.get("outcome") == "duplicate" else body


def first_outcomes(traffic: Traffic) -> Counter[str]:
    """Per key, the outcome of its first answer, counted."""
    return Counter(
        str(first_answer(bodies[0]).get("outcome"))
        for bodies in traffic.answers.values()
    )


# --------------------------------------------------------------------------
# Projections


def read_positions(store: Store) -> dict[str, tuple[int, str, str | None]]:
    with store.database.engine().connect() as conn:
        rows = conn.execute(
            select(
                positions_table.c.name,
                positions_table.c.position,
                positions_table.c.state,
                positions_table.c.error,
            )
        )
        return {name: (int(pos), state, error) for name, pos, state, error in rows}


def wait_caught_up(database_url: str, stall_seconds: float) -> Result:
    """Wait until every projection's position is the head of the log; fail
    when none moved for ``stall_seconds``."""
    store = Store(database_url)
    try:
        names = list(all_projections())
        last, moved = None, time.monotonic()
        while True:
            head = store.service.recorder.max_notification_id() or 0
            found = read_positions(store)
            now = {name: found.get(name, (0, "none", None)) for name in names}
            if all(position == head for position, _, _ in now.values()):
                return Result("projections caught up", True, f"head {head}")
            marks = tuple(position for position, _, _ in now.values())
            if marks != last:
                last, moved = marks, time.monotonic()
            elif time.monotonic() - moved > stall_seconds:
                return Result(
                    "projections caught up",
                    False,
                    f"no progress for {stall_seconds:.0f}s: head {head}, {now}",
                )
            time.sleep(0.2)
    finally:
        store.close()


# --------------------------------------------------------------------------
# The checks


def run_all(
    *,
    database_url: str,
    env: Mapping[str, str],
    taken: Sequence[Chunk],
    truth: Mapping[ObjectKey, dict[str, Any]],
    traffic: Traffic,
    base_urls: Sequence[str],
    audit_sample: int,
    seed: int,
) -> list[Result]:
    store = Store(database_url)
    try:
        keys = [event.key for each in taken for event in each.events]
        checks: list[Callable[[], Result | list[Result]]] = [
            lambda: check_statuses(traffic),
            lambda: check_acknowledged(traffic, keys),
            lambda: check_one_first_answer(traffic),
            lambda: check_delivery_log(store, traffic, keys),
            lambda: check_recorded_attempts(store, traffic),
            lambda: check_aggregates(store, truth),
            lambda: check_audit_api(base_urls, truth, audit_sample, seed),
            lambda: check_read_models(store, truth),
            lambda: check_read_models_versions(store, truth),
            lambda: check_source_stats(store, traffic),
            lambda: check_events_per_key(store, truth, traffic),
            lambda: check_projection_states(store),
            lambda: check_audit_verify(env),
        ]
        results: list[Result] = []
        for check in checks:
            began = time.monotonic()
            found = check()
            seconds = time.monotonic() - began
            for each in found if isinstance(found, list) else [found]:
                results.append(dataclasses.replace(each, seconds=seconds))
    finally:
        store.close()
    return results


def check_statuses(traffic: Traffic) -> Result:
    """Only 2xx and 503 (retried); never a 500 or a 4xx."""
    problems = [
        f"{n} x {status}"
        for status, n in sorted(traffic.statuses.items())
        if not (200 <= status < 300 or status == 503)
    ]
    problems += traffic.unexpected
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(traffic.statuses.items()))
    return result("no 5xx but 503, no 4xx", problems, statuses)


def check_acknowledged(traffic: Traffic, keys: Sequence[str]) -> Result:
    missing = [key for key in keys if key not in traffic.answers]
    problems = list(traffic.given_up) + [
        f"{key}: never acknowledged" for key in missing
    ]
    return result(
        "every delivery acknowledged", problems, f"{len(keys):,} keys acknowledged"
    )


def check_one_first_answer(traffic: Traffic) -> Result:
    """Per key: at most one answer that is not ``duplicate``, and every
    answer (or the ``first`` it repeats) the same first answer."""
    problems = []
    for key, bodies in traffic.answers.items():
        originals = [b for b in bodies if b.get("outcome") != "duplicate"]
        if len(originals) > 1:
            outcomes = [b.get("outcome") for b in originals]
            problems.append(f"{key}: {len(originals)} non-duplicate answers {outcomes}")
        firsts = {json.dumps(first_answer(b), sort_keys=True) for b in bodies}
        if len(firsts) > 1:
            problems.append(f"{key}: different first answers {sorted(firsts)}")
    answers = sum(len(b) for b in traffic.answers.values())
    return result(
        "one non-duplicate outcome per key",
        problems,
        f"{len(traffic.answers):,} keys, {answers:,} 2xx answers agree",
    )


def delivery_rows(store: Store) -> list[tuple[str, str, Any, dict[str, str]]]:
    """(source, key, answer, headers) of every delivery record."""
    with store.database.engine().connect() as conn:
        rows = conn.execute(
            text("SELECT source, idempotency_key, answer, headers FROM deliveries")
        ).all()
    return [
        (source, key, json.loads(answer), json.loads(headers))
        for source, key, answer, headers in rows
    ]


def check_delivery_log(store: Store, traffic: Traffic, keys: Sequence[str]) -> Result:
    """One record per key, holding the first answer the partner was given."""
    rows = delivery_rows(store)
    recorded: dict[str, Any] = {}
    problems = []
    for source, key, answer, _ in rows:
        if source != SOURCE or key in recorded:
            problems.append(f"unexpected record {source}/{key}")
        recorded[key] = answer
    expected = set(keys)
    problems += [f"{key}: no record" for key in sorted(expected - set(recorded))]
    problems += [f"{key}: not sent" for key in sorted(set(recorded) - expected)]
    for key, bodies in traffic.answers.items():
        if key in recorded and recorded[key] != first_answer(bodies[0]):
            problems.append(
                f"{key}: recorded {recorded[key]}, told {first_answer(bodies[0])}"
            )
    return result(
        "delivery log agrees", problems, f"{len(rows):,} records, one per key"
    )


def check_recorded_attempts(store: Store, traffic: Traffic) -> Result:
    """The attempt whose decision a record holds (its stored headers name
    it) was answered that decision, or lost its connection: never a 503 (a
    non-2xx means nothing was stored) nor a ``duplicate``."""
    problems = []
    lost = 0
    for _, key, answer, headers in delivery_rows(store):
        attempt = {k.lower(): v for k, v in headers.items()}.get(ATTEMPT_HEADER)
        told = traffic.attempts.get(attempt or "")
        if told is None:
            problems.append(f"{key}: recorded attempt {attempt!r} was never sent")
        elif told.startswith("broken"):
            lost += 1
        elif told != f"2xx {answer.get('outcome')}":
            problems.append(
                f"{key}: recorded {answer.get('outcome')}, its attempt was told "
                f"{told!r}"
            )
    return result(
        "the recorded attempt got the recorded answer",
        problems,
        f"each record's attempt was answered it ({lost} lost their connection)",
    )


def normal(value: Any) -> Any:
    """JSON's view of a state (tuples as lists)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def check_aggregates(store: Store, truth: Mapping[ObjectKey, dict[str, Any]]) -> Result:
    problems = []
    for (kind, object_id), expected in truth.items():
        state = store.state(kind, object_id)
        if state is None or normal(state) != normal(expected):
            problems.append(f"{kind} {object_id}: {_diff(state, expected)}")
    return result(
        "aggregates = ground truth", problems, f"{len(truth):,} objects equal"
    )


def _diff(found: Mapping[str, Any] | None, expected: Mapping[str, Any]) -> str:
    if found is None:
        return "missing"
    found, expected = normal(found), normal(expected)
    parts = []
    for part in sorted(set(found) | set(expected)):
        have, want = found.get(part), expected.get(part)
        if have == want:
            continue
        if isinstance(have, dict) and isinstance(want, dict):
            fields = {
                k: (have.get(k), want.get(k))
                for k in sorted(set(have) | set(want))
                if have.get(k) != want.get(k)
            }
            parts.append(f"{part} (found, expected) {fields}")
        else:
            parts.append(f"{part} {have!r} != {want!r}")
    return "; ".join(parts)


def check_audit_api(
    base_urls: Sequence[str],
    truth: Mapping[ObjectKey, dict[str, Any]],
    sample: int,
    seed: int,
) -> Result:
    """``GET /audit/aggregates/{type}/{id}`` of a sample of the objects, on
    the live servers, against the ground truth."""
    objects = sorted(truth)
    chosen = random.Random(seed).sample(objects, min(sample, len(objects)))

    def ask(number: int, kind: str, object_id: str) -> str | None:
        base_url = base_urls[number % len(base_urls)]
        response = httpx.get(
            f"{base_url}/audit/aggregates/{kind}/{object_id}",
            headers=auth("auditor"),
            timeout=30,
        )
        if response.status_code != 200:
            return f"{kind} {object_id}: {response.status_code} {response.text[:200]}"
        body = response.json()
        state = {
            "status": body["status"],
            "values": body["fields"],
            "positions": body["positions"],
            "parked": sorted(p["key"] for p in body["parked"]),
        }
        expected = truth[(kind, object_id)]
        if normal(state) != normal(expected):
            return f"{kind} {object_id}: {_diff(state, expected)}"
        return None

    with ThreadPoolExecutor(4) as pool:
        found = pool.map(
            lambda job: ask(*job),
            [(n, kind, object_id) for n, (kind, object_id) in enumerate(chosen)],
        )
        problems = [problem for problem in found if problem]
    return result(
        "audit API = ground truth", problems, f"{len(chosen)} objects sampled, equal"
    )


def truth_orders(truth: Mapping[ObjectKey, dict[str, Any]]) -> dict[str, Any]:
    """``orders`` rows (without version and updated_at, which are the log's)
    from the ground truth."""
    rows = {}
    for (kind, object_id), state in truth.items():
        if kind != "order":
            continue
        rows[object_id] = order_row(state)
    return rows


def truth_customers(truth: Mapping[ObjectKey, dict[str, Any]]) -> dict[str, Any]:
    rows = {}
    for (kind, object_id), state in truth.items():
        if kind != "customer":
            continue
        row: dict[str, Any] = {
            name: json_text(state["values"].get(name)) for name in CUSTOMER_FIELDS
        }
        row["deleted"] = state["status"] == "deleted"
        rows[object_id] = row
    return rows


def without_log_columns(rows: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: {k: v for k, v in row.items() if k not in ("version", "updated_at")}
        for key, row in rows.items()
    }


def compare_rows(
    name: str, found: Mapping[str, Any], expected: Mapping[str, Any], ok: str
) -> Result:
    problems = []
    for key in sorted(set(found) | set(expected)):
        have, want = found.get(key), expected.get(key)
        if have == want:
            continue
        if have is None or want is None:
            problems.append(f"{key}: row {have}, expected {want}")
            continue
        fields = {
            field: (have.get(field), want.get(field))
            for field in sorted(set(have) | set(want))
            if have.get(field) != want.get(field)
        }
        problems.append(f"{key}: (found, expected) {fields}")
    return result(name, problems, ok)


def check_read_models(
    store: Store, truth: Mapping[ObjectKey, dict[str, Any]]
) -> list[Result]:
    engine = store.database.engine()
    orders = truth_orders(truth)
    found_orders = without_log_columns(table_rows(OrdersProjection(), "orders", engine))
    customers = truth_customers(truth)
    found_customers = without_log_columns(
        table_rows(CustomersProjection(), "customers", engine)
    )
    revenue = expected_revenue(orders)
    found_revenue = table_rows(RevenueProjection(), "revenue", engine)
    money = ", ".join(
        f"{currency} net {totals['net_cents'] / 100:,.2f}"
        for currency, totals in sorted(revenue.items())
    )
    return [
        compare_rows(
            "orders = ground truth", found_orders, orders, f"{len(orders):,} rows"
        ),
        compare_rows(
            "customers = ground truth",
            found_customers,
            customers,
            f"{len(customers):,} rows",
        ),
        compare_rows(
            "revenue = ground truth, to the cent", found_revenue, revenue, money
        ),
    ]


def check_read_models_versions(
    store: Store, truth: Mapping[ObjectKey, dict[str, Any]]
) -> Result:
    """``orders`` and ``customers`` with the version and time of the last
    event each shows, as the aggregates in the log say."""
    engine = store.database.engine()
    order_ids = [object_id for kind, object_id in truth if kind == "order"]
    customer_ids = [object_id for kind, object_id in truth if kind == "customer"]
    found = {
        **{
            ("order", k): v
            for k, v in table_rows(OrdersProjection(), "orders", engine).items()
        },
        **{
            ("customer", k): v
            for k, v in table_rows(CustomersProjection(), "customers", engine).items()
        },
    }
    expected = {
        **{
            ("order", k): v
            for k, v in expected_orders(store.service, order_ids).items()
        },
        **{
            ("customer", k): v
            for k, v in expected_customers(store.service, customer_ids).items()
        },
    }
    checked = compare_rows(
        "read models = aggregates (with versions)",
        {str(k): v for k, v in found.items()},
        {str(k): v for k, v in expected.items()},
        f"{len(expected):,} rows",
    )
    return checked


def check_source_stats(store: Store, traffic: Traffic) -> Result:
    """``source_stats`` and the receipts in the log count each key once, by
    the outcome the partner was first given."""
    told = Counter({(SOURCE, k): v for k, v in first_outcomes(traffic).items()})
    stats = source_stats(store.database.engine())
    receipts = receipt_outcomes(store.service)
    problems = []
    if stats != told:
        problems.append(f"source_stats {dict(stats)} != told {dict(told)}")
    if receipts != told:
        problems.append(f"receipts {dict(receipts)} != told {dict(told)}")
    return result(
        "source_stats = first outcomes",
        problems,
        ", ".join(f"{k[1]} {v:,}" for k, v in sorted(told.items())),
    )


def aggregate_id(kind: str, object_id: str) -> Any:
    return (Order if kind == "order" else Customer).create_id(object_id)


def check_events_per_key(
    store: Store, truth: Mapping[ObjectKey, dict[str, Any]], traffic: Traffic
) -> Result:
    """No key caused two sets of events; an applied key caused exactly one."""
    caused: Counter[str] = Counter()
    for kind, object_id in truth:
        for event in store.service.events.get(aggregate_id(kind, object_id)):
            cause = getattr(event, "key", None)
            if cause and type(event).__name__ not in EVENTS_NOT_CAUSED:
                caused[cause] += 1
    problems = [f"{key}: {n} events" for key, n in caused.items() if n > 1]
    for key, bodies in traffic.answers.items():
        if first_answer(bodies[0]).get("outcome") == "applied" and caused[key] != 1:
            problems.append(f"{key}: applied, caused {caused[key]} events")
    return result(
        "at most one set of events per key",
        problems,
        f"{sum(caused.values()):,} events, one cause each",
    )


def check_projection_states(store: Store) -> Result:
    found = read_positions(store)
    problems = [
        f"{name}: {state} {error}"
        for name, (_, state, error) in found.items()
        if state != "running"
    ]
    return result("no projection failed", problems, "all running")


def check_audit_verify(env: Mapping[str, str]) -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "idemsync", "audit", "verify"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    said = [line for line in lines if line.startswith(("verified", "OK", "FAILED"))]
    if done.returncode != 0:
        said = lines[:SHOWN] + said + done.stderr.strip().splitlines()[-3:]
    return Result("idemsync audit verify", done.returncode == 0, " / ".join(said))
