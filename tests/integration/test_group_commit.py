"""Group commit (infrastructure/group_commit.py) on both backends: concurrent
deliveries share a transaction, each keeps its own outcome, a conflict or a
repeated key fails only its own delivery, and waiting is bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import IntegrityError

from domain.application import Decision, SyncService
from domain.commands import CreateOrder, MarkPaid
from domain.delivery import Answer, Delivery, Outcome
from domain.namespaces import DEFAULT_NAMESPACE
from infrastructure.group_commit import GroupCommit, Overloaded
from infrastructure.persistence.database import Database
from tests.store import Store

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def delivery(key: str) -> Delivery:
    return Delivery(source="acme", key=key, received_at=NOW, payload=b"{}")


def created(order_id: str) -> CreateOrder:
    return CreateOrder(
        occurred_at=NOW,
        sequence=1,
        order_id=order_id,
        customer_id="cus_1",
        currency="EUR",
        total_cents=5000,
    )


def paid(order_id: str, sequence: int) -> MarkPaid:
    return MarkPaid(
        occurred_at=NOW, sequence=sequence, order_id=order_id, amount_cents=100
    )


@pytest.fixture
def service(database_url: str) -> Iterator[SyncService]:
    database = Database(database_url, pool_size=8)
    app = SyncService(env=database.eventsourcing_env())
    yield app
    app.close()
    database.close()


class Gate:
    """A commit that holds its first call until released, so that the test
    knows what is queued behind it; records each batch's size."""

    def __init__(self, commit: Callable[[Sequence[Decision]], None]) -> None:
        self.commit = commit
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sizes: list[int] = []
        self.shared: list[int] = []
        """Per batch: how many events' aggregates another decision of the
        batch also appends to (must be none)."""

    def __call__(self, decisions: Sequence[Decision]) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        self.sizes.append(len(decisions))
        ids = [i for decision in decisions for i in decision.aggregate_ids]
        self.shared.append(len(ids) - len(set(ids)))
        self.commit(decisions)


@pytest.fixture
def gate(service: SyncService) -> Iterator[tuple[Gate, GroupCommit]]:
    held = Gate(service.commit)
    group = GroupCommit(held, wait_seconds=30)
    group.start()
    service.committer = group
    yield held, group
    held.release.set()
    group.close()


def queued(group: GroupCommit, count: int) -> None:
    """Wait until ``count`` decisions wait behind the held commit."""
    for _ in range(3000):
        with group._changed:
            if len(group._queue) >= count:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"never {count} queued")


def receive_all(
    service: SyncService, work: list[tuple[Delivery, list[CreateOrder | MarkPaid]]]
) -> tuple[ThreadPoolExecutor, list[object]]:
    pool = ThreadPoolExecutor(len(work))
    futures = [pool.submit(service.receive, d, commands) for d, commands in work]
    return pool, futures  # type: ignore[return-value]


def answers(futures: list[object]) -> list[Answer]:
    return [future.result(timeout=60) for future in futures]  # type: ignore[attr-defined]


def test_concurrent_deliveries_share_one_transaction_and_keep_their_outcomes(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    first = ThreadPoolExecutor(1).submit(
        service.receive, delivery("k0"), [created("ord_0")]
    )
    assert held.entered.wait(10)
    work = [(delivery(f"k{n}"), [created(f"ord_{n}")]) for n in range(1, 21)]
    work.append((delivery("k-early"), [paid("ord_late", 2)]))
    pool, futures = receive_all(service, work)
    queued(group, len(work))
    held.release.set()
    results = answers(futures)
    assert first.result(timeout=30).outcome is Outcome.APPLIED
    assert [a.outcome for a in results] == [Outcome.APPLIED] * 20 + [Outcome.PARKED]
    assert held.sizes == [1, len(work)]
    assert group.batches == 2 and group.committed == len(work) + 1
    assert len(store.keys()) == len(work) + 1
    assert store.state("order", "ord_7", DEFAULT_NAMESPACE)["status"] == "created"
    pool.shutdown()


def test_deliveries_to_one_aggregate_never_share_a_batch_and_are_all_decided(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    service.commit([service.decide(delivery("k-create"), [created("ord_1")])])
    work = [(delivery(f"k-pay{n}"), [paid("ord_1", n)]) for n in range(2, 8)]
    pool, futures = receive_all(service, work)
    queued(group, 1)
    held.release.set()
    results = answers(futures)
    assert all(a.outcome in (Outcome.APPLIED, Outcome.STALE) for a in results)
    assert Outcome.APPLIED in {a.outcome for a in results}
    state = store.state("order", "ord_1", DEFAULT_NAMESPACE)
    assert state is not None and state["values"]["paid_cents"] == 100
    assert state["positions"]["status"][0] == 7
    assert set(held.shared) == {0}
    pool.shutdown()


def test_a_conflicting_decision_fails_alone_and_the_rest_of_its_batch_commits(
    service: SyncService, database_url: str, store: Store
) -> None:
    service.receive(delivery("k-create"), [created("ord_1")])
    stale = service.decide(delivery("k-stale"), [paid("ord_1", 5)])
    other = SyncService(env=Database(database_url).eventsourcing_env())
    other.receive(delivery("k-winner"), [paid("ord_1", 6)])
    other.close()
    held = Gate(service.commit)
    group = GroupCommit(held, wait_seconds=30)
    group.start()
    try:
        fresh = [
            service.decide(delivery(f"k{n}"), [created(f"ord_n{n}")]) for n in range(7)
        ]
        blocker = ThreadPoolExecutor(1).submit(
            group.submit, service.decide(delivery("k-first"), [created("ord_f")])
        )
        assert held.entered.wait(10)
        pool = ThreadPoolExecutor(8)
        outcomes = [
            pool.submit(group.submit, d) for d in [*fresh[:3], stale, *fresh[3:]]
        ]
        queued(group, 8)
        held.release.set()
        blocker.result(timeout=30)
        errors = [f.exception(timeout=30) for f in outcomes]
    finally:
        held.release.set()
        group.close()
    assert [type(e) for e in errors] == [type(None)] * 3 + [IntegrityError] + [
        type(None)
    ] * 4
    keys = store.keys()
    assert ("acme", "k-stale") not in keys
    assert {("acme", f"k{n}") for n in range(7)} <= keys
    assert group.committed == 8


def test_the_same_key_twice_at_once_is_one_delivery_and_one_duplicate(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    blocker = ThreadPoolExecutor(1).submit(
        service.receive, delivery("k-first"), [created("ord_f")]
    )
    assert held.entered.wait(10)
    twice = [(delivery("k-same"), [created("ord_s")]) for _ in range(2)]
    pool, futures = receive_all(service, twice)
    queued(group, 2)
    held.release.set()
    blocker.result(timeout=30)
    outcomes = sorted(a.outcome.value for a in answers(futures))
    assert outcomes == ["applied", "duplicate"]
    assert store.count("deliveries") == 2
    pool.shutdown()


def test_a_lone_delivery_commits_at_once_without_waiting_for_a_batch(
    service: SyncService,
) -> None:
    group = GroupCommit(service.commit, wait_seconds=30)
    group.start()
    try:
        decision = service.decide(delivery("k1"), [created("ord_1")])
        started = datetime.now(UTC)
        group.submit(decision)
        waited = (datetime.now(UTC) - started).total_seconds()
    finally:
        group.close()
    assert group.batches == 1
    assert waited < 2, "a lone delivery waited for a batch to fill"


def test_waiting_is_bounded_and_a_withdrawn_delivery_is_not_stored(
    service: SyncService, store: Store
) -> None:
    held = Gate(service.commit)
    group = GroupCommit(held, max_waiting=2, wait_seconds=0.3)
    group.start()
    try:
        blocker = ThreadPoolExecutor(1).submit(
            group.submit, service.decide(delivery("k-first"), [created("ord_f")])
        )
        assert held.entered.wait(10)
        pool = ThreadPoolExecutor(2)
        waiting = [
            pool.submit(
                group.submit, service.decide(delivery(f"k{n}"), [created(f"ord_{n}")])
            )
            for n in range(2)
        ]
        queued(group, 2)
        with pytest.raises(Overloaded, match="waiting to commit"):
            group.submit(service.decide(delivery("k-full"), [created("ord_x")]))
        for future in waiting:
            assert isinstance(future.exception(timeout=10), Overloaded)
        held.release.set()
        blocker.result(timeout=30)
    finally:
        held.release.set()
        group.close()
    assert store.keys() == {("acme", "k-first")}


def test_a_store_failure_fails_the_whole_batch_and_stores_nothing_of_it(
    service: SyncService, store: Store
) -> None:
    failures = iter([RuntimeError("the store went away")])

    def flaky(decisions: Sequence[Decision]) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        service.commit(decisions)

    group = GroupCommit(flaky, wait_seconds=30)
    group.start()
    try:
        with pytest.raises(RuntimeError, match="went away"):
            group.submit(service.decide(delivery("k1"), [created("ord_1")]))
        group.submit(service.decide(delivery("k2"), [created("ord_2")]))
    finally:
        group.close()
    assert store.keys() == {("acme", "k2")}
