"""The end of a chaos run: the store, the read models and what the partners
were told, against the ground truth computed from the script alone.

A key is *decided* when its first answer is its own (it names the key): then
it has a delivery record and a receipt. A ``hub`` key that re-sends a
captured body whose fingerprint was recorded first under another key is not:
its first answer is that key's, and nothing of it is written but a sighting.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from tests.chaos.script import ACME, HUB, NAMESPACE, Chunk, Keys, keys_of
from tests.chaos.simulator import ATTEMPT_HEADER, Traffic
from tests.histories import Event, ObjectKey
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


def decided(traffic: Traffic) -> dict[str, Mapping[str, Any]]:
    """The first answer of every decided key (see the module's docstring)."""
    found = {}
    for key, bodies in traffic.answers.items():
        first = first_answer(bodies[0])
        if first.get("key") == key:
            found[key] = first
    return found


OF_ANOTHER_KEY = "duplicate of another key"


def first_outcomes(traffic: Traffic) -> Counter[str]:
    """Per key, the outcome of its first answer, counted; a key whose first
    answer is another key's (a capture re-sent under a fresh key) as
    ``OF_ANOTHER_KEY``."""
    own = decided(traffic)
    return Counter(
        str(own[key].get("outcome")) if key in own else OF_ANOTHER_KEY
        for key in traffic.answers
    )


def resend_answers(traffic: Traffic, keys: Keys) -> Counter[str]:
    """The first answers of the keys that re-send an event under a fresh
    key, by source: ``acme stale``, ``hub duplicate`` (of the original or of
    another copy), ``hub applied`` (this copy came first)..."""
    own = decided(traffic)
    return Counter(
        f"{keys.source[key]} "
        + (str(own[key].get("outcome")) if key in own else "duplicate")
        for key, original in keys.original.items()
        if key != original and key in traffic.answers
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
    store = Store(database_url, NAMESPACE)
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
    store = Store(database_url, NAMESPACE)
    try:
        keys = keys_of(taken)
        events = {event.key: event for each in taken for event in each.events}
        rows = Rows(store)
        caused = Caused(store, truth)
        checks: list[Callable[[], Result | list[Result]]] = [
            lambda: check_statuses(traffic),
            lambda: check_acknowledged(traffic, list(keys.source)),
            lambda: check_one_first_answer(traffic),
            lambda: check_delivery_log(rows(), traffic, keys),
            lambda: check_fingerprints(store, traffic, keys, events),
            lambda: check_recorded_attempts(rows(), traffic),
            lambda: check_captured_resends(traffic, keys),
            lambda: check_partner_resends(rows(), traffic, keys),
            lambda: check_applied_once(rows(), traffic, keys, caused()),
            lambda: check_aggregates(store, truth),
            lambda: check_audit_api(base_urls, truth, audit_sample, seed),
            lambda: check_read_models(store, truth),
            lambda: check_read_models_versions(store, truth),
            lambda: check_source_stats(store, traffic, keys),
            lambda: check_events_per_key(caused(), traffic),
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


@dataclass(frozen=True)
class Row:
    """A delivery record, as the checks read it."""

    source: str
    key: str
    answer: dict[str, Any]
    headers: dict[str, str]
    resolution: str | None

    @property
    def final(self) -> str:
        """What became of the delivery: its outcome, or, parked, the outcome
        it was released with (``parked`` while it waits)."""
        outcome = str(self.answer.get("outcome"))
        if outcome == "parked" and self.resolution is not None:
            return self.resolution
        return outcome


class Rows:
    """Every delivery record, read once (on first use)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rows: list[Row] | None = None

    def __call__(self) -> list[Row]:
        if self.rows is None:
            with self.store.database.engine().connect() as conn:
                found = conn.execute(
                    text(
                        "SELECT source, idempotency_key, answer, headers, resolution "
                        "FROM deliveries"
                    )
                ).all()
            self.rows = [
                Row(source, key, json.loads(answer), json.loads(headers), resolution)
                for source, key, answer, headers, resolution in found
            ]
        return self.rows


def check_delivery_log(rows: Sequence[Row], traffic: Traffic, keys: Keys) -> Result:
    """One record per decided key, of its source, holding the first answer
    the partner was given; none for a key that was not decided (a capture
    re-sent under a fresh key writes no record)."""
    own = decided(traffic)
    recorded: dict[str, Any] = {}
    problems = []
    for row in rows:
        if row.key in recorded or keys.source.get(row.key) != row.source:
            problems.append(f"unexpected record {row.source}/{row.key}")
        recorded[row.key] = row.answer
    problems += [f"{key}: no record" for key in sorted(set(own) - set(recorded))]
    for key in sorted(set(recorded) - set(own)):
        if key in traffic.answers:
            named = first_answer(traffic.answers[key][0]).get("key")
            problems.append(f"{key}: a duplicate of {named}, has a record")
        else:
            problems.append(f"{key}: recorded, never acknowledged")
    for key, first in own.items():
        if key in recorded and recorded[key] != first:
            problems.append(f"{key}: recorded {recorded[key]}, told {first}")
    others = len(traffic.answers) - len(own)
    return result(
        "delivery log agrees",
        problems,
        f"{len(rows):,} records, one per decided key; none for the {others:,} "
        "duplicates of another key",
    )


def fingerprint(event: Event) -> str:
    """What the server records for a ``hub`` delivery: the digest of the
    bytes GitHub signs, the body."""
    return "sha256:" + hashlib.sha256(event.body).hexdigest()


def check_fingerprints(
    store: Store, traffic: Traffic, keys: Keys, events: Mapping[str, Event]
) -> Result:
    """One fingerprint per ``hub`` event, whatever the number of keys it
    was sent under, naming the key that was decided and holding its first
    answer; none on ``acme`` (its key is signed)."""
    with store.database.engine().connect() as conn:
        rows = conn.execute(
            text(
                "SELECT source, digest, idempotency_key, answer "
                "FROM delivery_fingerprints"
            )
        ).all()
    found = {
        (source, digest): (key, json.loads(answer))
        for source, digest, key, answer in rows
    }
    own = decided(traffic)
    problems = [
        f"{source}/{digest}: a fingerprint on acme"
        for source, digest in found
        if source != HUB
    ]
    expected = set()
    for original, group in keys.groups().items():
        if keys.source[original] != HUB:
            continue
        digest = fingerprint(events[original])
        expected.add((HUB, digest))
        firsts = [key for key in group if key in own]
        recorded = found.get((HUB, digest))
        if recorded is None:
            problems.append(f"{original}: no fingerprint")
        elif len(firsts) == 1 and recorded != (firsts[0], own[firsts[0]]):
            problems.append(
                f"{original}: fingerprint names {recorded[0]} {recorded[1]}, "
                f"decided {firsts[0]} {own[firsts[0]]}"
            )
    problems += [
        f"{source}/{digest} ({key}): not a hub event"
        for (source, digest), (key, _) in found.items()
        if source == HUB and (source, digest) not in expected
    ]
    return result(
        "fingerprints: one per hub event, naming its first key",
        problems,
        f"{len(rows):,} fingerprints for {len(expected):,} hub events",
    )


def check_recorded_attempts(rows: Sequence[Row], traffic: Traffic) -> Result:
    """The attempt whose decision a record holds (its stored headers name
    it) was answered that decision, or lost its connection: never a 503 (a
    non-2xx means nothing was stored) nor a ``duplicate``."""
    problems = []
    lost = 0
    for row in rows:
        key, answer = row.key, row.answer
        attempt = {k.lower(): v for k, v in row.headers.items()}.get(ATTEMPT_HEADER)
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


def check_captured_resends(traffic: Traffic, keys: Keys) -> Result:
    """Every ``hub`` event, sent under several keys (GitHub's redeliveries
    and captured bodies re-sent under fresh ``X-GitHub-Delivery`` keys):
    exactly one key decided, usually the original (a re-send sent at the
    same moment may come first); every other key answered only
    ``duplicate``, with ``first`` the decided key's first answer."""
    own = decided(traffic)
    problems = []
    resent = came_first = 0
    for original, group in keys.groups().items():
        if keys.source[original] != HUB or len(group) == 1:
            continue
        resent += len(group) - 1
        firsts = [key for key in group if key in own]
        if len(firsts) != 1:
            problems.append(
                f"{original}: {len(firsts)} of its {len(group)} keys decided "
                f"{[(k, own[k].get('outcome')) for k in firsts]}"
            )
            continue
        first = firsts[0]
        came_first += first != original
        for key in group:
            if key == first:
                continue
            for body in traffic.answers.get(key, []):
                if body.get("outcome") != "duplicate":
                    problems.append(
                        f"{key} (re-sends {original}): answered "
                        f"{body.get('outcome')}, {first} was first"
                    )
                elif body.get("first") != own[first]:
                    problems.append(
                        f"{key} (re-sends {original}): first {body.get('first')}, "
                        f"recorded first {own[first]}"
                    )
    return result(
        "hub: a capture under a fresh key is a duplicate of the first",
        problems,
        f"{resent:,} re-sends: {resent - came_first:,} answered duplicate of "
        f"the first copy, {came_first:,} came first (the original then answered "
        "duplicate of it)",
    )


def check_partner_resends(rows: Sequence[Row], traffic: Traffic, keys: Keys) -> Result:
    """Every ``acme`` event re-sent by the partner under a fresh key (signed):
    each key has its own answer (the key is signed, nothing else makes it a
    duplicate), and in the end every key of the event is ``stale`` but at
    most one (the copy that came first: ``applied``, or whatever the event
    alone was), each re-send ``stale`` or ``applied``, never ``rejected``."""
    own = decided(traffic)
    final = {row.key: row.final for row in rows}
    problems = []
    ends: Counter[str] = Counter()
    for original, group in keys.groups().items():
        if keys.source[original] != ACME or len(group) == 1:
            continue
        others = [key for key in group if key in traffic.answers and key not in own]
        problems += [
            f"{key}: first answer is {first_answer(traffic.answers[key][0])}"
            for key in others
        ]
        outcomes = {key: final.get(key, "no record") for key in group}
        ends.update(outcomes[key] for key in group[1:])
        if sum(outcome != "stale" for outcome in outcomes.values()) > 1:
            problems.append(f"{original}: more than one not stale {outcomes}")
        problems += [
            f"{key} (re-sends {original}): ends {outcomes[key]}"
            for key in group[1:]
            if outcomes[key] not in ("stale", "applied")
        ]
    return result(
        "acme: an event re-sent under a fresh key is stale",
        problems,
        "re-sends end " + ", ".join(f"{k} {v:,}" for k, v in sorted(ends.items())),
    )


def check_applied_once(
    rows: Sequence[Row], traffic: Traffic, keys: Keys, caused: Mapping[str, int]
) -> Result:
    """No event applied twice: of all the keys an event was sent under
    (original and re-sends, both sources), at most one was answered
    ``applied`` or released as ``applied``, and at most one caused events in
    the log."""
    final = {row.key: row.final for row in rows}
    own = decided(traffic)
    problems = []
    resent = 0
    for original, group in keys.groups().items():
        resent += len(group) > 1
        applied = [
            key
            for key in group
            if final.get(key) == "applied"
            or own.get(key, {}).get("outcome") == "applied"
        ]
        causes = [key for key in group if caused.get(key)]
        if len(applied) > 1:
            problems.append(f"{original}: applied under {applied}")
        if len(causes) > 1:
            problems.append(
                f"{original}: events caused by {[(k, caused[k]) for k in causes]}"
            )
    return result(
        "no event applied twice (re-sends under fresh keys)",
        problems,
        f"{len(keys.original):,} keys for {len(keys.groups()):,} events "
        f"({resent:,} re-sent): each applied at most once",
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
    found_orders = without_log_columns(
        table_rows(OrdersProjection(), "orders", engine, NAMESPACE)
    )
    customers = truth_customers(truth)
    found_customers = without_log_columns(
        table_rows(CustomersProjection(), "customers", engine, NAMESPACE)
    )
    revenue = expected_revenue(orders)
    found_revenue = table_rows(RevenueProjection(), "revenue", engine, NAMESPACE)
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
            for k, v in table_rows(
                OrdersProjection(), "orders", engine, NAMESPACE
            ).items()
        },
        **{
            ("customer", k): v
            for k, v in table_rows(
                CustomersProjection(), "customers", engine, NAMESPACE
            ).items()
        },
    }
    expected = {
        **{
            ("order", k): v
            for k, v in expected_orders(store.service, order_ids, NAMESPACE).items()
        },
        **{
            ("customer", k): v
            for k, v in expected_customers(
                store.service, customer_ids, NAMESPACE
            ).items()
        },
    }
    checked = compare_rows(
        "read models = aggregates (with versions)",
        {str(k): v for k, v in found.items()},
        {str(k): v for k, v in expected.items()},
        f"{len(expected):,} rows",
    )
    return checked


def check_source_stats(store: Store, traffic: Traffic, keys: Keys) -> Result:
    """``source_stats`` and the receipts in the log count each decided key
    once, by the outcome the partner was first given (a capture re-sent
    under a fresh key issues no receipt: its sighting counts on the first)."""
    told = Counter(
        (keys.source[key], str(first.get("outcome")))
        for key, first in decided(traffic).items()
    )
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
        ", ".join(f"{k[0]} {k[1]} {v:,}" for k, v in sorted(told.items())),
    )


def aggregate_id(kind: str, object_id: str) -> Any:
    return (Order if kind == "order" else Customer).create_id(object_id, NAMESPACE)


class Caused:
    """How many events each key caused in the log (on first use, once):
    every event of the script's objects but those that record a delivery's
    passage."""

    def __init__(self, store: Store, truth: Mapping[ObjectKey, Any]) -> None:
        self.store = store
        self.truth = truth
        self.caused: Counter[str] | None = None

    def __call__(self) -> Counter[str]:
        if self.caused is None:
            self.caused = Counter()
            for kind, object_id in self.truth:
                for event in self.store.service.events.get(
                    aggregate_id(kind, object_id)
                ):
                    cause = getattr(event, "key", None)
                    if cause and type(event).__name__ not in EVENTS_NOT_CAUSED:
                        self.caused[cause] += 1
        return self.caused


def check_events_per_key(caused: Counter[str], traffic: Traffic) -> Result:
    """No key caused two sets of events; a key decided ``applied`` caused
    exactly one."""
    problems = [f"{key}: {n} events" for key, n in caused.items() if n > 1]
    for key, first in decided(traffic).items():
        if first.get("outcome") == "applied" and caused[key] != 1:
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
