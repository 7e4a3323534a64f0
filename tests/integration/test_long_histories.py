"""Long histories (issue 8, item 4): snapshots of orders and customers.

``SyncService`` snapshots an object every ``snapshotting_intervals`` events
(20), after the events committed, from the stored events; loading reads the
latest snapshot and only the events after it. These tests check, on both
backends, that a 10,000-event order is loaded reading as few rows as a new
one, that a snapshot's state is exactly the state its events replay to (also
for version lookups and the audit trail), and that a failed or raced save
never leaves a snapshot of a state that did not commit (also with two writer
processes on PostgreSQL). Speed is measured by ``bench/long_history.py``, not
here: the tests count rows read.
"""

from __future__ import annotations

import multiprocessing
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from eventsourcing.application import Repository
from eventsourcing.domain import Aggregate
from eventsourcing.domain import Snapshot as AggregateSnapshot
from eventsourcing.persistence import IntegrityError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from domain.application import AGGREGATES, SyncService
from domain.commands import Command, CreateOrder, MarkPaid, MarkShipped
from domain.customer import Customer
from domain.delivery import Delivery, Outcome
from domain.order import Order
from infrastructure.audit.trail import AuditTrail
from infrastructure.audit.verify import verify
from infrastructure.mappings.standard import map_standard
from infrastructure.persistence.database import Database
from tests.conftest import PG_SERVER, pg_execute
from tests.histories import MEMORY_ENV, ObjectKey, history, schedule

SOURCE = "acme"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LONG = 10_000
BATCH = 1_000


class EveryThree(SyncService):
    """The service with a snapshot every 3 events, so that short histories
    have many (same name: same tables)."""

    name = "idemsync"
    snapshotting_intervals = dict.fromkeys((Order, Customer), 3)


class NoSnapshots(SyncService):
    """The service as it was before snapshots: every load replays every event."""

    name = "idemsync"
    snapshotting_intervals: ClassVar[dict[Any, int]] = {}


# -- helpers ---------------------------------------------------------------------------


def service_on(url: str, cls: type[SyncService] = SyncService) -> SyncService:
    return cls(env=Database(url, pool_size=2).eventsourcing_env())


def replaying(service: SyncService) -> Repository[uuid.UUID]:
    """A repository on ``service``'s events that ignores snapshots."""
    return Repository(service.events)


def state_of(obj: Any) -> dict[str, Any]:
    """Everything an aggregate holds, types included (a tuple is not a list)."""
    return {k: v for k, v in vars(obj).items() if k != "_pending_events"}


def delivery(key: str, at: int = 0) -> Delivery:
    return Delivery(SOURCE, key, START + timedelta(seconds=at), b"{}")


def create(order_id: str) -> CreateOrder:
    return CreateOrder(
        order_id=order_id,
        customer_id="cus_1",
        currency="EUR",
        total_cents=10_000_000,
        sequence=1,
        occurred_at=START,
    )


def paid(order_id: str, sequence: int) -> MarkPaid:
    return MarkPaid(
        order_id=order_id,
        amount_cents=sequence,
        sequence=sequence,
        occurred_at=START + timedelta(seconds=sequence),
    )


def shipped(order_id: str, sequence: int) -> MarkShipped:
    return MarkShipped(
        order_id=order_id,
        carrier="DHL",
        tracking_number=f"T{sequence}",
        sequence=sequence,
        occurred_at=START + timedelta(seconds=sequence),
    )


def receive(service: SyncService, key: str, command: Command) -> Outcome:
    return service.receive(delivery(key), [command]).outcome


def grow(service: SyncService, order_id: str, events: int) -> Order:
    """Append ``events`` real ``Order.Paid`` events to a created order (each
    decided by the domain, as if from its own delivery), ``BATCH`` per save."""
    order = cast(Order, service.find("order", order_id))
    first = order.version
    for number in range(events):
        sequence = first + number + 2
        order.execute(paid(order_id, sequence), SOURCE, f"pay-{sequence}")
        if len(order.pending_events) == BATCH or number == events - 1:
            service.save(order)
    return order


@dataclass
class Reads:
    """Rows fetched from the event table and from the snapshot table."""

    events: int = 0
    snapshots: int = 0

    @property
    def rows(self) -> int:
        return self.events + self.snapshots

    def reset(self) -> None:
        self.events = self.snapshots = 0


def count_reads(service: SyncService, monkeypatch: pytest.MonkeyPatch) -> Reads:
    """Counts the rows ``service``'s recorders fetch from here on."""
    reads = Reads()
    assert service.snapshots is not None
    for recorder, name in (
        (service.recorder, "events"),
        (service.snapshots.recorder, "snapshots"),
    ):

        def select(
            *args: Any,
            _select: Any = recorder.select_events,
            _name: str = name,
            **kwargs: Any,
        ) -> Any:
            rows = _select(*args, **kwargs)
            setattr(reads, _name, getattr(reads, _name) + len(rows))
            return rows

        monkeypatch.setattr(recorder, "select_events", select)
    return reads


def snapshot_rows(url: str) -> list[tuple[uuid.UUID, int]]:
    """``(originator_id, version)`` of every stored snapshot."""
    database = Database(url)
    try:
        with database.engine().connect() as conn:
            rows = conn.execute(
                text("SELECT originator_id, originator_version FROM idemsync_snapshots")
            ).all()
    finally:
        database.close()
    return sorted((uuid.UUID(str(i)), int(v)) for i, v in rows)


def check_every_snapshot_is_a_committed_state(url: str) -> int:
    """Each stored snapshot is at a committed version and holds exactly the
    state its events replay to; returns how many there are."""
    service = service_on(url)
    assert service.snapshots is not None
    try:
        rows = snapshot_rows(url)
        for originator_id, version in rows:
            (snapshot,) = service.snapshots.get(
                originator_id, gt=version - 1, lte=version
            )
            restored = cast(AggregateSnapshot, snapshot).mutate(None)
            replayed: Aggregate = replaying(service).get(originator_id, version=version)
            assert replayed.version == version == restored.version
            assert state_of(restored) == state_of(replayed)
    finally:
        service.close()
    return len(rows)


@pytest.fixture
def new_database(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> Iterator[Callable[[], str]]:
    """Makes fresh migrated databases of ``database_url``'s backend (one per
    hypothesis example)."""
    made: list[str] = []

    def make() -> str:
        if database_url.startswith("sqlite"):
            path = tmp_path / f"example-{len(made)}.db"
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
            made.append(f"sqlite:///{path}")
        else:
            template = request.getfixturevalue("pg_template")
            name = f"idemsync_t_{uuid.uuid4().hex[:12]}"
            pg_execute(f"CREATE DATABASE {name} TEMPLATE {template}")
            made.append(f"{PG_SERVER}/{name}")
        return made[-1]

    yield make
    for url in made:
        if not url.startswith("sqlite"):
            name = url.rsplit("/", 1)[1]
            pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def deliver_history(
    service: SyncService, seed: int, orders: int = 3, customers: int = 2
) -> tuple[list[tuple[str, str | None]], set[ObjectKey]]:
    """A random valid history, delivered in a random schedule (reordered,
    with retries: parked, stale and duplicate answers too); returns each
    answer's outcome and reason, and the objects."""
    events = history(seed, orders=orders, customers=customers)
    answers = []
    for number, event in enumerate(schedule(events, seed + 1)):
        answer = service.receive(
            Delivery(SOURCE, event.key, START + timedelta(seconds=number), event.body),
            map_standard(event.body, {}),
        )
        answers.append((answer.outcome.value, answer.reason))
    return answers, {event.object for event in events}


# -- the configuration -----------------------------------------------------------------


def test_orders_and_customers_are_snapshotted_every_twenty_events() -> None:
    assert SyncService.snapshotting_intervals == {Order: 20, Customer: 20}


def test_a_delivery_committed_through_receive_takes_a_snapshot_at_the_interval(
    database_url: str,
) -> None:
    service = service_on(database_url, EveryThree)
    try:
        assert receive(service, "create", create("ord_1")) is Outcome.APPLIED
        assert snapshot_rows(database_url) == []
        assert receive(service, "pay", paid("ord_1", 2)) is Outcome.APPLIED
        # Tracked, Created, Paid: version 3; receipts are not snapshotted.
        assert snapshot_rows(database_url) == [(Order.create_id("ord_1"), 3)]
        assert check_every_snapshot_is_a_committed_state(database_url) == 1
    finally:
        service.close()


# -- a 10,000-event order --------------------------------------------------------------


@pytest.mark.slow
def test_an_order_with_ten_thousand_events_is_decided_reading_as_few_rows_as_a_new_one(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = service_on(database_url)
    try:
        assert receive(service, "create-long", create("ord_long")) is Outcome.APPLIED
        assert receive(service, "create-new", create("ord_new")) is Outcome.APPLIED
        assert grow(service, "ord_long", LONG).version == LONG + 2  # Tracked, Created
        assert len(snapshot_rows(database_url)) == (LONG + 2) // 20

        reads = count_reads(service, monkeypatch)
        new = service.decide(delivery("ship-new"), [shipped("ord_new", LONG + 9)])
        assert new.answer.outcome is Outcome.APPLIED
        new_reads = reads.rows
        reads.reset()
        decided = service.decide(delivery("ship-long"), [shipped("ord_long", LONG + 9)])
        assert decided.answer.outcome is Outcome.APPLIED
        # The snapshot at version 10,000 and the two events after it, where a
        # new order reads its two events (and no snapshot).
        assert (reads.snapshots, reads.events) == (1, 2)
        assert new_reads == 2
        assert reads.rows <= 2 * new_reads

        # Without snapshots: every event.
        reads.reset()
        everything: Aggregate = replaying(service).get(Order.create_id("ord_long"))
        assert reads.events == LONG + 2
        assert state_of(service.repository.get(everything.id)) == state_of(everything)

        answer = service.receive(delivery("ship-long"), [shipped("ord_long", LONG + 9)])
        assert answer.outcome is Outcome.APPLIED
        assert answer.objects[0].version == LONG + 3
    finally:
        service.close()


# -- snapshots hold exactly the committed state ----------------------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_the_state_loaded_from_snapshots_is_the_state_replayed_from_every_event(
    new_database: Callable[[], str], seed: int
) -> None:
    url = new_database()
    service = service_on(url, EveryThree)
    reference = NoSnapshots(env=MEMORY_ENV)
    try:
        answers, objects = deliver_history(service, seed)
        # Every decision taken on state loaded from snapshots is the one taken
        # on state replayed from every event.
        assert answers == deliver_history(reference, seed)[0]
        assert check_every_snapshot_is_a_committed_state(url) > 0
        for kind, object_id in objects:
            originator_id = AGGREGATES[kind].create_id(object_id)
            head: Aggregate = service.repository.get(originator_id)
            assert state_of(head) == state_of(replaying(service).get(originator_id))
            assert service.state_of(kind, object_id) == reference.state_of(
                kind, object_id
            )
            for version in range(1, head.version + 1):
                at: Aggregate = service.repository.get(originator_id, version=version)
                again: Aggregate = replaying(service).get(
                    originator_id, version=version
                )
                assert state_of(at) == state_of(again), (kind, object_id, version)
    finally:
        service.close()
        reference.close()


def test_version_and_as_of_lookups_through_the_audit_trail_are_the_same_with_and_without_snapshots(  # noqa: E501
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = service_on(database_url, EveryThree)
    plain = service_on(database_url, NoSnapshots)
    database = Database(database_url)
    try:
        _, objects = deliver_history(service, seed=8, orders=4, customers=3)
        assert snapshot_rows(database_url)
        reads = count_reads(service, monkeypatch)
        with_snapshots = AuditTrail(database.engine(), service)
        without = AuditTrail(database.engine(), plain)
        with database.engine().connect() as conn:
            recorded = [
                row[0]
                for row in conn.execute(
                    text("SELECT DISTINCT recorded_at FROM event_audit")
                )
            ]
        moments = sorted({_moment(r) for r in recorded})
        moments = [moments[0] - timedelta(seconds=1), *moments]
        for kind, object_id in sorted(objects):
            head = with_snapshots.state(kind, object_id)
            assert head is not None and head == without.state(kind, object_id)
            for version in range(1, head["aggregate"]["version"] + 2):
                assert with_snapshots.state(
                    kind, object_id, version=version
                ) == without.state(kind, object_id, version=version)
            for at in moments:
                assert with_snapshots.state(kind, object_id, as_of=at) == without.state(
                    kind, object_id, as_of=at
                )
        assert reads.snapshots > 0  # the lookups did use snapshots

        # verify and export read the event log only, never the snapshot table.
        report = verify(database.engine())
        assert not report.failed
        with database.engine().connect() as conn:
            events = conn.execute(text("SELECT count(*) FROM idemsync_events")).scalar()
        assert report.events == events
        assert len(list(with_snapshots.log())) == events
    finally:
        service.close()
        plain.close()
        database.close()


def _moment(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(value)


def test_a_save_that_loses_its_race_leaves_no_snapshot(database_url: str) -> None:
    service = service_on(database_url, EveryThree)
    try:
        assert receive(service, "create", create("ord_1")) is Outcome.APPLIED
        order_id = Order.create_id("ord_1")
        winner = cast(Order, service.repository.get(order_id))
        loser = cast(Order, service.repository.get(order_id))
        winner.execute(paid("ord_1", 2), SOURCE, "pay-2")
        service.save(winner)  # version 3: a snapshot
        for sequence in range(3, 7):  # versions 3 to 6, on a stale version 2
            loser.execute(paid("ord_1", sequence * 10), SOURCE, f"pay-{sequence}")
        with pytest.raises(IntegrityError):
            service.save(loser)
        assert snapshot_rows(database_url) == [(order_id, 3)]
        head = cast(Order, service.repository.get(order_id))
        assert head.version == 3 and head.values["paid_cents"] == 2
        assert check_every_snapshot_is_a_committed_state(database_url) == 1
    finally:
        service.close()


def test_a_snapshot_that_cannot_be_stored_does_not_fail_the_save_that_committed(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = service_on(database_url, EveryThree)
    try:
        assert service.snapshots is not None

        def broken(*args: Any, **kwargs: Any) -> None:
            raise OSError("the snapshot store is down")

        monkeypatch.setattr(service.snapshots.recorder, "insert_events", broken)
        assert receive(service, "create", create("ord_1")) is Outcome.APPLIED
        assert receive(service, "pay", paid("ord_1", 2)) is Outcome.APPLIED
        assert snapshot_rows(database_url) == []
        head = service.find("order", "ord_1")
        assert head is not None and head.version == 3
        assert head.values["paid_cents"] == 2
    finally:
        service.close()


# -- two writer processes --------------------------------------------------------------

ORDER = "ord_contended"
PER_PROCESS = 60


def write_and_read(url: str, sequences: list[int], barrier: Any) -> tuple[int, int]:
    """In a worker process: deliver a payment for each of ``sequences`` to
    the contended order and, after each, load it (from the latest snapshot)
    and compare it with its events replayed. Returns (conflicts, loads that
    started from a snapshot)."""
    service = service_on(url, EveryThree)
    assert service.snapshots is not None
    order_id = Order.create_id(ORDER)
    from_snapshot = 0
    try:
        barrier.wait(timeout=60)
        for sequence in sequences:
            outcome = receive(service, f"pay-{sequence}", paid(ORDER, sequence))
            assert outcome in (Outcome.APPLIED, Outcome.STALE), outcome
            loaded: Aggregate = service.repository.get(order_id)
            latest = list(service.snapshots.get(order_id, desc=True, limit=1))
            if latest and latest[0].originator_version <= loaded.version:
                from_snapshot += 1
            replayed: Aggregate = replaying(service).get(
                order_id, version=loaded.version
            )
            assert state_of(loaded) == state_of(replayed), sequence
        return service.conflicts, from_snapshot
    finally:
        service.close()


@pytest.mark.postgres
def test_two_writer_processes_never_read_or_leave_a_snapshot_of_an_uncommitted_state(
    postgres_url: str,
) -> None:
    service = service_on(postgres_url, EveryThree)
    try:
        assert receive(service, "create", create(ORDER)) is Outcome.APPLIED
    finally:
        service.close()
    context = multiprocessing.get_context("spawn")
    with (
        context.Manager() as manager,
        ProcessPoolExecutor(2, mp_context=context) as pool,
    ):
        barrier = manager.Barrier(2)
        shares = [list(range(2 + i, 2 + 2 * PER_PROCESS, 2)) for i in (0, 1)]
        futures = [
            pool.submit(write_and_read, postgres_url, share, barrier)
            for share in shares
        ]
        results = [future.result(timeout=180) for future in futures]
    conflicts = sum(c for c, _ in results)
    assert sum(s for _, s in results) > 0
    assert conflicts > 0, "the two writers never raced"
    assert check_every_snapshot_is_a_committed_state(postgres_url) > 10
