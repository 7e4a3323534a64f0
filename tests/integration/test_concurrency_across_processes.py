"""Contract invariants 1 and 2 across OS processes, on both backends.

Eight processes each build their own service on the same database (as eight
``idemsync serve`` workers would) and fire at a barrier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import multiprocessing
import random
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from infrastructure.persistence.database import Database
from infrastructure.pipeline import Pipeline
from infrastructure.refusals import Refusal
from infrastructure.settings import Settings, SourceSettings
from tests.partner import Partner, Request, make_settings
from tests.store import Store

PROCESSES = 8
HUB_SECRET = "gh-" + "p" * 29
Sent = tuple[str, bytes, dict[str, str], str]
_intakes: dict[str, Pipeline] = {}
Runner = Callable[..., tuple[list[dict[str, Any]], int]]


def settings_for(url: str, secret: str) -> Settings:
    """``acme`` (Standard Webhooks) and ``hub`` (GitHub's scheme, whose key
    is outside the signature), both with the standard mapping."""
    base = make_settings(url, secret)
    hub = SourceSettings(name="hub", scheme="github", secrets=(HUB_SECRET,))
    return dataclasses.replace(base, sources={**base.sources, "hub": hub})


def fire(url: str, secret: str, requests: list[Sent], barrier: Any) -> tuple[Any, int]:
    """In a worker process: its own service on ``url``, then its requests."""
    from domain.application import SyncService

    if url not in _intakes:
        for previous in _intakes.values():
            previous.service.close()
        _intakes.clear()
        database = Database(url, pool_size=2)
        service = SyncService(env=database.eventsourcing_env())
        _intakes[url] = Pipeline(settings_for(url, secret), service)
    intake = _intakes[url]
    conflicts_before = intake.service.conflicts
    answers: list[dict[str, Any]] = []
    barrier.wait(timeout=60)
    for _, body, headers, source in requests:
        try:
            answers.append(intake.receive(source, headers, body).to_json())
        except Refusal as refused:
            answers.append({"outcome": f"refused {refused.error}: {refused.detail}"})
    return answers, intake.service.conflicts - conflicts_before


@pytest.fixture(scope="module")
def workers() -> Iterator[tuple[ProcessPoolExecutor, Any]]:
    """Eight processes, started once for the module; a barrier to fire at."""
    context = multiprocessing.get_context("spawn")
    with (
        context.Manager() as manager,
        ProcessPoolExecutor(PROCESSES, mp_context=context) as pool,
    ):
        yield pool, manager.Barrier(PROCESSES)


@pytest.fixture
def run_in_processes(
    workers: tuple[ProcessPoolExecutor, Any], database_url: str, secret: str
) -> Runner:
    pool, barrier = workers

    def run(
        requests: list[Request], source: str = "acme"
    ) -> tuple[list[dict[str, Any]], int]:
        shares = [
            [(r.key, r.body, r.headers, source) for r in requests[i::PROCESSES]]
            for i in range(PROCESSES)
        ]
        futures = [
            pool.submit(fire, database_url, secret, share, barrier) for share in shares
        ]
        collected = [future.result(timeout=180) for future in futures]
        answers = [answer for share, _ in collected for answer in share]
        return answers, sum(conflicts for _, conflicts in collected)

    return run


def test_fifty_identical_deliveries_from_eight_processes_are_applied_exactly_once(
    run_in_processes: Runner, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_once", total_cents=990)
    answers, _ = run_in_processes([request] * 50)

    outcomes = Counter(answer["outcome"] for answer in answers)
    assert outcomes == {"applied": 1, "duplicate": 49}
    (first,) = [a for a in answers if a["outcome"] == "applied"]
    assert all(a["first"] == first for a in answers if a["outcome"] == "duplicate")
    assert store.count("deliveries") == 1
    assert store.count("idemsync_events") == 3  # Tracked, Created, Receipt.Issued


def test_one_captured_body_under_forty_fresh_keys_from_eight_processes_counts_once(
    run_in_processes: Runner, partner: Partner, store: Store
) -> None:
    """GitHub's key is outside its signature: forty copies of one signed
    body, each under its own ``X-GitHub-Delivery``, race from eight
    processes. One is applied; the others are its duplicates, by the
    fingerprint of the signed bytes."""
    body = partner.envelope(
        "order.created",
        order_id="ord_captured",
        customer_id="cus_1",
        currency="EUR",
        total_cents=990,
    )
    signature = hmac.new(HUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    copies = [
        Request(
            f"gh-{n}",
            body,
            {
                "x-github-delivery": f"gh-{n}",
                "x-hub-signature-256": f"sha256={signature}",
            },
        )
        for n in range(40)
    ]
    answers, _ = run_in_processes(copies, "hub")

    outcomes = Counter(answer["outcome"] for answer in answers)
    assert outcomes == {"applied": 1, "duplicate": 39}
    (first,) = [a for a in answers if a["outcome"] == "applied"]
    assert all(a["first"] == first for a in answers if a["outcome"] == "duplicate")
    assert store.count("deliveries") == 1
    assert store.count("delivery_fingerprints") == 1
    assert store.count("idemsync_events") == 3  # Tracked, Created, Receipt.Issued


def test_identical_deliveries_for_a_missing_order_are_parked_exactly_once(
    run_in_processes: Runner, partner: Partner, store: Store
) -> None:
    request = partner.event("order.paid", order_id="ord_later", amount_cents=5)
    answers, _ = run_in_processes([request] * 24)

    assert Counter(a["outcome"] for a in answers) == {"parked": 1, "duplicate": 23}
    assert store.count("idemsync_events") == 3  # Tracked, Parked, Receipt.Issued
    assert store.state("order", "ord_later")["parked"] == [request.key]


def test_two_hundred_deliveries_on_one_order_from_eight_processes_are_all_decided(
    run_in_processes: Runner, partner: Partner, store: Store
) -> None:
    create = partner.order_created("ord_hot", total_cents=10_000, sequence=1)
    assert run_in_processes([create])[0][0]["outcome"] == "applied"
    payments = [
        partner.event("order.paid", order_id="ord_hot", amount_cents=seq, sequence=seq)
        for seq in range(2, 202)
    ]
    random.Random(7).shuffle(payments)

    answers, conflicts = run_in_processes(payments)
    print(f"\n{len(answers)} deliveries, {conflicts} version conflicts retried")

    outcomes = Counter(answer["outcome"] for answer in answers)
    assert set(outcomes) <= {"applied", "stale"}, outcomes
    applied_versions = sorted(
        a["aggregate"]["version"] for a in answers if a["outcome"] == "applied"
    )
    first_version = 3  # Tracked, Created
    assert applied_versions == list(
        range(first_version, first_version + outcomes["applied"])
    )
    state = store.state("order", "ord_hot")
    assert state["status"] == "paid"
    assert state["values"]["paid_cents"] == 201
    assert (
        store.service.repository.get(
            store.service.find("order", "ord_hot", "acme").id  # type: ignore[union-attr]
        ).version
        == first_version - 1 + outcomes["applied"]
    )
    assert store.count("deliveries") == 201
