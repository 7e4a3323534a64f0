"""Contract section 5, invariant 3 (durable acknowledgment), end to end:
kill -9 of a serving ``idemsync serve`` during a stream of deliveries,
restart it on the same database, resend everything that was not
acknowledged, then the rest. Every object ends as in-order delivery would
leave it, every acknowledged delivery is stored once and answers its retry
with its first answer, and no key caused two sets of events."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from domain.customer import Customer
from domain.order import Order
from tests.e2e.conftest import Server
from tests.histories import Event, ground_truth, history, schedule
from tests.partner import Partner
from tests.store import Store

pytestmark = pytest.mark.e2e

SEED = 20261102
CLIENTS = 4
RETRY_TRIES = 50
RETRY_PAUSE = 0.2
KEY_EVENTS_EXCLUDED = {"Parked", "Released", "Tracked"}


@dataclass
class Traffic:
    """What the partner saw: every answer and every failed attempt."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    failures: list[tuple[Event, str, bool]] = field(default_factory=list)
    acknowledged: int = 0

    def answer(self, event: Event, response: httpx.Response) -> int:
        """Record ``response``; returns how many 2xx there were so far."""
        with self.lock:
            self.answers.append((event.key, response.status_code, response.json()))
            if response.is_success:
                self.acknowledged += 1
            return self.acknowledged

    def fail(self, event: Event, error: Exception, after_kill: bool) -> None:
        with self.lock:
            self.failures.append((event, repr(error), after_kill))

    def acknowledged_answers(self) -> dict[str, dict[str, Any]]:
        """Per acknowledged key, its first answer (the one under ``first``
        when the partner was answered ``duplicate``); every acknowledgment of
        one key must agree on it."""
        firsts: dict[str, dict[str, Any]] = {}
        for key, status, body in self.answers:
            if not 200 <= status < 300:
                continue
            first = body["first"] if body["outcome"] == "duplicate" else body
            assert firsts.setdefault(key, first) == first, (key, firsts[key], first)
        return firsts


def run_clients(target: Callable[[], None]) -> None:
    """Run ``target`` in ``CLIENTS`` threads; re-raise the first error."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=guarded) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a client thread hung"
    if errors:
        raise errors[0]


def post(
    client: httpx.Client, url: str, partner: Partner, event: Event
) -> httpx.Response:
    """One delivery attempt, signed now (as a partner's retry is)."""
    request = partner.sign(event.body, key=event.key)
    return client.post(url, content=request.body, headers=request.headers)


def send_until_kill(
    server: Server, partner: Partner, plan: list[Event], threshold: int
) -> tuple[Traffic, int]:
    """Send ``plan`` from ``CLIENTS`` threads; the thread whose answer is the
    ``threshold``-th 2xx kills the server while the others are mid-request.
    Returns the traffic and how many of ``plan`` were taken."""
    traffic, killed = Traffic(), threading.Event()
    taken = 0
    url = f"{server.base_url}/webhooks/acme"

    def client_thread() -> None:
        nonlocal taken
        with httpx.Client(timeout=15) as client:
            while not killed.is_set():
                with traffic.lock:
                    if taken >= len(plan):
                        return
                    event, taken = plan[taken], taken + 1
                try:
                    response = post(client, url, partner, event)
                except httpx.TransportError as error:
                    traffic.fail(event, error, killed.is_set())
                    continue
                acknowledged = traffic.answer(event, response)
                with traffic.lock:
                    kill = acknowledged >= threshold and not killed.is_set()
                    if kill:
                        killed.set()
                if kill:
                    server.crash()

    run_clients(client_thread)
    assert killed.is_set(), "the server was never killed"
    return traffic, taken


def send_with_retries(
    server: Server, partner: Partner, traffic: Traffic, events: Iterable[Event]
) -> None:
    """Send each event until it is answered (the server may still be
    starting), from ``CLIENTS`` threads in the given order."""
    queue = list(events)
    url = f"{server.base_url}/webhooks/acme"

    def client_thread() -> None:
        with httpx.Client(timeout=15) as client:
            while True:
                with traffic.lock:
                    if not queue:
                        return
                    event = queue.pop(0)
                for _ in range(RETRY_TRIES):
                    try:
                        traffic.answer(event, post(client, url, partner, event))
                        break
                    except httpx.TransportError as error:
                        traffic.fail(event, error, True)
                        time.sleep(RETRY_PAUSE)
                else:
                    raise AssertionError(f"{event.key} never answered after restart")

    run_clients(client_thread)


def aggregate_id(kind: str, object_id: str) -> Any:
    """In the namespace of the server's source ``acme``."""
    return (Order if kind == "order" else Customer).create_id(object_id, "acme")


def test_a_killed_server_loses_no_acknowledged_delivery_and_applies_none_twice(
    server: Server, partner: Partner, store: Store, database_url: str
) -> None:
    events = history(SEED, orders=35, customers=15)
    truth = ground_truth(events)
    plan = schedule(events, SEED, duplicate_ratio=0.3)
    threshold = len(plan) // 3

    traffic, taken = send_until_kill(server, partner, plan, threshold)
    acknowledged_before_kill = traffic.acknowledged
    before_kill = [(e.key, error) for e, error, after in traffic.failures if not after]
    assert not before_kill, f"connection errors before the kill: {before_kill}"
    in_flight = [event for event, _, _ in traffic.failures]

    acked_keys = {key for key, status, _ in traffic.answers if 200 <= status < 300}
    mark = len(traffic.answers)

    server.start()
    send_with_retries(server, partner, traffic, in_flight)
    first_after_restart: dict[str, str] = {}
    for key, _, body in traffic.answers[mark:]:
        first_after_restart.setdefault(key, body["outcome"])
    committed_unacknowledged = {
        key
        for key, outcome in first_after_restart.items()
        if key not in acked_keys and outcome == "duplicate"
    }
    send_with_retries(server, partner, traffic, plan[taken:])

    statuses = Counter(status for _, status, _ in traffic.answers)
    assert set(statuses) <= {200, 202}, statuses

    # Every acknowledged delivery answers its retry with its first answer.
    firsts = traffic.acknowledged_answers()
    assert set(firsts) == {event.key for event in events}
    by_key = {event.key: event for event in events}
    with httpx.Client(timeout=15) as client:
        for key, first in firsts.items():
            response = post(
                client, f"{server.base_url}/webhooks/acme", partner, by_key[key]
            )
            assert response.status_code == 200, response.text
            assert response.headers["idempotent-replayed"] == "true"
            assert response.json() == {
                "outcome": "duplicate",
                "source": "acme",
                "key": key,
                "first": first,
            }

    # Stored once each, and nothing else.
    assert store.keys() == {("acme", event.key) for event in events}
    with store.database.engine().connect() as conn:
        twice = conn.execute(
            text(
                "SELECT source, idempotency_key, count(*) FROM deliveries "
                "GROUP BY source, idempotency_key HAVING count(*) > 1"
            )
        ).all()
    assert twice == []

    # Every object as in-order delivery leaves it: status, values, positions.
    states = {obj: store.state(*obj) for obj in truth}
    assert {o: s and s["status"] for o, s in states.items()} == {
        o: s["status"] for o, s in truth.items()
    }
    assert {o: s and s["values"] for o, s in states.items()} == {
        o: s["values"] for o, s in truth.items()
    }
    assert states == truth

    # No key caused two sets of events.
    caused: Counter[str] = Counter()
    for kind, object_id in truth:
        for domain_event in store.service.events.get(aggregate_id(kind, object_id)):
            cause = getattr(domain_event, "key", None)
            if cause and type(domain_event).__name__ not in KEY_EVENTS_EXCLUDED:
                caused[cause] += 1
    assert {cause: n for cause, n in caused.items() if n > 1} == {}
    applied = {key for key, first in firsts.items() if first["outcome"] == "applied"}
    assert {key: caused[key] for key in applied if caused[key] != 1} == {}

    backend = database_url.split(":", 1)[0]
    print(
        f"\n[{backend}] {len(events)} events, {len(plan)} deliveries scheduled, "
        f"{len(traffic.answers)} answered; {acknowledged_before_kill} acknowledged "
        f"before kill -9 (threshold {threshold}), {taken} sent before it, "
        f"{len(in_flight)} in flight and resent ({len(committed_unacknowledged)} "
        f"committed before the kill), {len(plan) - taken} sent after restart"
    )
