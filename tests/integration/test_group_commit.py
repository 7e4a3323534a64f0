"""Group commit (infrastructure/group_commit.py) on both backends: the
deliveries waiting in a process are decided as a batch (first answers in one
query, aggregates read together) and committed in one transaction; each
keeps its own outcome, a repeated key inside a batch is a duplicate, a
conflict from another process fails only its own decision (decided again),
and waiting is bounded."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from domain.application import Decision, Mapped, Pending, SyncService
from domain.commands import CreateOrder, Ignored, MarkPaid
from domain.delivery import Answer, Delivery, Outcome
from domain.namespaces import DEFAULT_NAMESPACE
from infrastructure.group_commit import GroupCommit, Overloaded
from infrastructure.persistence.database import Database
from tests.store import Store

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def delivery(key: str, fingerprint: str | None = None) -> Delivery:
    return Delivery(
        source="acme", key=key, received_at=NOW, payload=b"{}", fingerprint=fingerprint
    )


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
    knows what is queued behind it; records each batch's size. ``before``
    runs before the second call commits (while its batch is decided and
    not yet committed)."""

    def __init__(
        self,
        commit: Callable[[Sequence[Decision]], None],
        before: Callable[[], None] | None = None,
    ) -> None:
        self.commit = commit
        self.before = before
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
        elif self.before is not None:
            before, self.before = self.before, None
            before()
        self.sizes.append(len(decisions))
        ids = [i for decision in decisions for i in decision.aggregate_ids]
        self.shared.append(len(ids) - len(set(ids)))
        self.commit(decisions)


@pytest.fixture
def gate(service: SyncService) -> Iterator[tuple[Gate, GroupCommit]]:
    held = Gate(service.commit)
    group = GroupCommit(service, held, wait_seconds=30)
    group.start()
    service.committer = group
    yield held, group
    held.release.set()
    group.close()


def queued(group: GroupCommit, count: int) -> None:
    """Wait until ``count`` deliveries wait behind the held commit."""
    for _ in range(3000):
        if group.waiting >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"never {count} queued")


Work = list[tuple[Delivery, Mapped | Callable[[], Mapped]]]


def receive_all(
    service: SyncService, work: Work
) -> tuple[ThreadPoolExecutor, list[Future[Answer]]]:
    """Each delivery of ``work`` received in a thread of its own, in order."""
    pool = ThreadPoolExecutor(len(work))
    futures = []
    for d, commands in work:
        futures.append(pool.submit(service.receive, d, commands))
        threading.Event().wait(0.002)
    return pool, futures


def answers(futures: list[Future[Answer]]) -> list[Answer]:
    return [future.result(timeout=60) for future in futures]


def decided_together(
    service: SyncService, held: Gate, group: GroupCommit, work: Work
) -> list[Future[Answer]]:
    """``work`` queued behind a held first batch, then released: decided as
    one batch (or more, when some of it must wait); its futures, done."""
    blocker = hold_first_batch(service, held)
    pool, futures = receive_all(service, work)
    queued(group, len(work))
    held.release.set()
    blocker.result(timeout=30)
    pool.shutdown()
    return futures


def hold_first_batch(service: SyncService, held: Gate) -> Future[Answer]:
    """A first delivery whose commit the gate holds: what comes next queues."""
    blocker = ThreadPoolExecutor(1).submit(
        service.receive, delivery("k-first"), [created("ord_f")]
    )
    assert held.entered.wait(10)
    return blocker


def test_concurrent_deliveries_share_one_transaction_and_keep_their_outcomes(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    first = ThreadPoolExecutor(1).submit(
        service.receive, delivery("k0"), [created("ord_0")]
    )
    assert held.entered.wait(10)
    work: Work = [(delivery(f"k{n}"), [created(f"ord_{n}")]) for n in range(1, 21)]
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


def test_two_deliveries_for_one_aggregate_in_a_batch_are_decided_one_after_the_other(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    work: Work = [
        (delivery("k-create"), [created("ord_1")]),
        (delivery("k-pay"), [paid("ord_1", 2)]),
        (delivery("k-other"), [created("ord_2")]),
    ]
    futures = decided_together(service, held, group, work)
    results = answers(futures)
    assert [a.outcome for a in results] == [Outcome.APPLIED] * 3, (
        "the payment saw the order its batch created: applied, not parked"
    )
    assert results[1].objects[0].version == results[0].objects[0].version + 1
    assert held.sizes == [1, 2, 1], "the payment waited for the next batch"
    assert set(held.shared) == {0}
    state = store.state("order", "ord_1", DEFAULT_NAMESPACE)
    assert state is not None and state["values"]["paid_cents"] == 100


def test_many_deliveries_for_one_aggregate_are_all_decided(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    service.commit([service.decide(delivery("k-create"), [created("ord_1")])])
    work: Work = [(delivery(f"k-pay{n}"), [paid("ord_1", n)]) for n in range(2, 8)]
    futures = decided_together(service, held, group, work)
    results = answers(futures)
    assert all(a.outcome in (Outcome.APPLIED, Outcome.STALE) for a in results)
    assert Outcome.APPLIED in {a.outcome for a in results}
    state = store.state("order", "ord_1", DEFAULT_NAMESPACE)
    assert state is not None and state["values"]["paid_cents"] == 100
    assert state["positions"]["status"][0] == 7
    assert set(held.shared) == {0}
    assert service.conflicts == 0


def pay_from_another_process(database_url: str, key: str, sequence: int) -> None:
    """Another writer: a process of its own pays ``ord_1``."""
    other = SyncService(env=Database(database_url).eventsourcing_env())
    other.receive(delivery(key), [paid("ord_1", sequence)])
    other.close()


def in_another_process(database_url: str, key: str, sequence: int) -> None:
    process = multiprocessing.get_context("spawn").Process(
        target=pay_from_another_process, args=(database_url, key, sequence)
    )
    process.start()
    process.join(60)
    assert process.exitcode == 0


def test_a_conflict_from_another_process_is_decided_again_alone_and_the_rest_commits(
    service: SyncService, database_url: str, store: Store
) -> None:
    service.receive(delivery("k-create"), [created("ord_1")])
    held = Gate(
        service.commit, before=lambda: in_another_process(database_url, "k-winner", 6)
    )
    group = GroupCommit(service, held, wait_seconds=60)
    group.start()
    service.committer = group
    try:
        blocker = hold_first_batch(service, held)
        work: Work = [(delivery(f"k{n}"), [created(f"ord_n{n}")]) for n in range(3)]
        work.append((delivery("k-late"), [paid("ord_1", 5)]))
        work += [(delivery(f"k{n}"), [created(f"ord_n{n}")]) for n in range(3, 7)]
        pool, futures = receive_all(service, work)
        queued(group, len(work))
        held.release.set()
        blocker.result(timeout=30)
        results = answers(futures)
    finally:
        held.release.set()
        group.close()
    outcomes = [a.outcome for a in results]
    assert outcomes == [Outcome.APPLIED] * 3 + [Outcome.STALE] + [Outcome.APPLIED] * 4
    assert service.conflicts == 1, "only the decision on ord_1 lost"
    assert held.sizes[:2] == [1, len(work)], "the batch was decided as one"
    keys = store.keys()
    assert {("acme", f"k{n}") for n in range(7)} | {("acme", "k-late")} <= keys
    state = store.state("order", "ord_1", DEFAULT_NAMESPACE)
    assert state is not None and state["positions"]["status"][0] == 6
    pool.shutdown()


def test_the_same_key_twice_in_one_batch_is_one_delivery_and_one_duplicate(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    twice: Work = [(delivery("k-same"), [created("ord_s")]) for _ in range(2)]
    futures = decided_together(service, held, group, twice)
    outcomes = sorted(a.outcome.value for a in answers(futures))
    assert outcomes == ["applied", "duplicate"]
    assert store.count("deliveries") == 2


def test_the_same_fingerprint_under_two_keys_in_one_batch_is_one_delivery(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    replayed: Work = [
        (delivery(key, fingerprint="sig-1"), [created("ord_s")])
        for key in ("k-sent", "k-replayed")
    ]
    futures = decided_together(service, held, group, replayed)
    results = answers(futures)
    assert sorted(a.outcome.value for a in results) == ["applied", "duplicate"]
    assert store.count("deliveries") == 2


def test_a_batch_answers_a_key_already_stored_from_its_first_answer(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate
    service.commit([service.decide(delivery("k-old"), [created("ord_old")])])
    decoded: list[str] = []

    def decode() -> Mapped:
        decoded.append("k-old")
        return [created("ord_other")]

    work: Work = [
        (delivery("k-new"), [created("ord_new")]),
        (delivery("k-old"), decode),
    ]
    futures = decided_together(service, held, group, work)
    new, old = answers(futures)
    assert new.outcome is Outcome.APPLIED
    assert old.outcome is Outcome.DUPLICATE
    assert old.first is not None and old.first["aggregate"]["id"] == "ord_old"
    assert decoded == [], "a retry is answered without decoding its body"
    assert store.state("order", "ord_other", DEFAULT_NAMESPACE) is None
    assert held.sizes == [1, 1]


def test_a_body_that_does_not_decode_fails_alone(
    service: SyncService, gate: tuple[Gate, GroupCommit], store: Store
) -> None:
    held, group = gate

    def unreadable() -> Mapped:
        raise ValueError("not JSON")

    work: Work = [
        (delivery("k-bad"), unreadable),
        (delivery("k-good"), [created("ord_g")]),
        (delivery("k-ignored"), Ignored("not ours")),
    ]
    futures = decided_together(service, held, group, work)
    with pytest.raises(ValueError, match="not JSON"):
        futures[0].result(timeout=30)
    assert futures[1].result(timeout=30).outcome is Outcome.APPLIED
    assert futures[2].result(timeout=30).outcome is Outcome.IGNORED
    stored = store.keys()
    assert ("acme", "k-bad") not in stored and ("acme", "k-good") in stored


def test_a_lone_delivery_commits_at_once_without_waiting_for_a_batch(
    service: SyncService,
) -> None:
    group = GroupCommit(service, wait_seconds=30)
    group.start()
    service.committer = group
    try:
        started = datetime.now(UTC)
        service.receive(delivery("k1"), [created("ord_1")])
        waited = (datetime.now(UTC) - started).total_seconds()
    finally:
        group.close()
    assert group.batches == 1
    assert waited < 2, "a lone delivery waited for a batch to fill"


def test_waiting_is_bounded_and_a_withdrawn_delivery_is_not_stored(
    service: SyncService, store: Store
) -> None:
    held = Gate(service.commit)
    group = GroupCommit(service, held, max_waiting=2, wait_seconds=0.3)
    group.start()
    service.committer = group
    try:
        blocker = hold_first_batch(service, held)
        pool = ThreadPoolExecutor(2)
        waiting = [
            pool.submit(service.receive, delivery(f"k{n}"), [created(f"ord_{n}")])
            for n in range(2)
        ]
        queued(group, 2)
        with pytest.raises(Overloaded, match="waiting to commit"):
            service.receive(delivery("k-full"), [created("ord_x")])
        for future in waiting:
            assert isinstance(future.exception(timeout=10), Overloaded)
        held.release.set()
        blocker.result(timeout=30)
    finally:
        held.release.set()
        group.close()
    assert store.keys() == {("acme", "k-first")}


def test_an_event_loop_waits_for_its_batch_without_a_thread_and_is_bounded_too(
    service: SyncService, store: Store
) -> None:
    held = Gate(service.commit)
    group = GroupCommit(service, held, wait_seconds=0.3)
    group.start()
    service.committer = group
    try:
        blocker = hold_first_batch(service, held)
        late = Pending(delivery("k-late"), [created("ord_l")])
        with pytest.raises(Overloaded, match="not committed within"):
            asyncio.run(group.answer(late))
        held.release.set()
        blocker.result(timeout=30)
        answer = asyncio.run(group.answer(Pending(delivery("k-on"), [created("o")])))
    finally:
        held.release.set()
        group.close()
    assert answer.outcome is Outcome.APPLIED
    assert store.keys() == {("acme", "k-first"), ("acme", "k-on")}


def test_a_store_failure_fails_the_whole_batch_and_stores_nothing_of_it(
    service: SyncService, store: Store
) -> None:
    failures = iter([RuntimeError("the store went away")])

    def flaky(decisions: Sequence[Decision]) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        service.commit(decisions)

    group = GroupCommit(service, flaky, wait_seconds=30)
    group.start()
    service.committer = group
    try:
        with pytest.raises(RuntimeError, match="went away"):
            service.receive(delivery("k1"), [created("ord_1")])
        service.receive(delivery("k2"), [created("ord_2")])
    finally:
        group.close()
    assert store.keys() == {("acme", "k2")}
