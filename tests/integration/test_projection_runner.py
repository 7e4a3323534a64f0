"""The projection runner (specification §6) on both backends: under eight
concurrent writer processes, with a failing projection, and with two runners
competing for the same projections.

The strong check is ``IdProbe``, a projection that exists only here: it
records every event it applies, with the order in which it applied them, in a
table whose primary key is the event's identity. Equal to the log, in log
order, means no event was skipped, repeated or reordered.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import psycopg
import pytest
from eventsourcing.utils import get_topic
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    insert,
    select,
    text,
)

from domain.application import Decision, SyncService
from domain.commands import CUSTOMER_FIELDS
from domain.customer import Customer
from domain.delivery import Delivery
from domain.namespaces import DEFAULT_NAMESPACE
from domain.order import Order
from domain.receipt import Receipt
from infrastructure.mappings.standard import map_standard
from infrastructure.persistence.database import Database
from projections import positions
from projections import runner as runner_module
from projections.base import Projection, Tables
from projections.catalog import all_projections
from projections.customers import CustomersProjection
from projections.leadership import AdvisoryLeadership, Leadership, lock_key
from projections.orders import COLUMNS as ORDER_COLUMNS
from projections.orders import OrdersProjection
from projections.revenue import RevenueProjection
from projections.runner import ProjectionRunner, Status
from tests.histories import SOURCE, START, Event, history, schedule

PROCESSES = 8
WAIT_SECONDS = 30.0
"""Upper bound of every wait for the runner: generous, and a failure says
what it was waiting for and what it saw."""

DEPOSED_SECONDS = 5.0
"""How long a runner whose lock session ended may go on believing it leads."""

Identity = tuple[str, int]
"""An event's identity: (originator id, originator version)."""


# --------------------------------------------------------------------------
# The id-recording projection (also used by tests/e2e/test_projection_crash.py)


class IdProbe(Projection):
    """Records every event it applies, in the order it applies them.

    ``event_classes`` is empty, so ``topics`` is ``[]``, which eventsourcing's
    ``select_notifications`` reads as *every* topic: the probe sees the whole
    log. The primary key ``(originator_id, originator_version)`` makes a
    second application of an event an ``IntegrityError``; ``seq`` is the
    order of application; ``runner`` says which runner applied it.
    """

    name: ClassVar[str] = "id_probe"
    event_classes: ClassVar[tuple[type, ...]] = ()

    def __init__(self, runner: str = "") -> None:
        self.runner = runner

    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        table = Table(
            f"{self.name}{suffix}",
            metadata,
            Column("originator_id", Text, primary_key=True),
            Column("originator_version", Integer, primary_key=True),
            Column("seq", Integer, nullable=False, unique=True),
            Column("runner", Text, nullable=False),
        )
        return {"applied": table}

    def process(self, conn: Connection, tables: Tables, event: Any) -> None:
        table = tables["applied"]
        following = select(func.coalesce(func.max(table.c.seq), 0) + 1)
        conn.execute(
            insert(table).values(
                originator_id=str(event.originator_id),
                originator_version=event.originator_version,
                seq=following.scalar_subquery(),
                runner=self.runner,
            )
        )


class FlakyProbe(IdProbe):
    """An ``IdProbe`` that raises on the events of one delivery while
    ``fault`` is set."""

    name: ClassVar[str] = "flaky_probe"

    def __init__(self, poison_key: str, fault: threading.Event) -> None:
        super().__init__()
        self.poison_key = poison_key
        self.fault = fault

    def process(self, conn: Connection, tables: Tables, event: Any) -> None:
        if self.fault.is_set() and getattr(event, "key", None) == self.poison_key:
            raise RuntimeError(f"poisoned by delivery {self.poison_key}")
        super().process(conn, tables, event)


def create_tables(engine: Engine, *projections: Projection) -> None:
    """Create the tables of test-only projections (Alembic owns the others)."""
    metadata = MetaData()
    for projection in projections:
        projection.define(metadata)
    metadata.create_all(engine)


def log_identities(service: SyncService) -> list[Identity]:
    """Every event in the log, in notification id order."""
    identities: list[Identity] = []
    start = 1
    while True:
        page = service.recorder.select_notifications(start=start, limit=2000)
        identities += [(str(n.originator_id), n.originator_version) for n in page]
        if len(page) < 2000:
            return identities
        start = page[-1].id + 1


def probe_rows(engine: Engine, name: str = IdProbe.name) -> list[tuple[Identity, str]]:
    """The probe's rows in the order they were applied, with their runner."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT originator_id, originator_version, runner FROM {name} "
                "ORDER BY seq"
            )
        )
        return [((oid, int(version)), by) for oid, version, by in rows]


def assert_probe_matches_log(
    engine: Engine, service: SyncService, name: str = IdProbe.name
) -> None:
    """The probe applied every event of the log exactly once, in log order."""
    applied = [identity for identity, _ in probe_rows(engine, name)]
    logged = log_identities(service)
    assert len(applied) == len(set(applied)), "an event was applied twice"
    missing = set(logged) - set(applied)
    extra = set(applied) - set(logged)
    assert not missing, f"{len(missing)} events never applied, e.g. {min(missing)}"
    assert not extra, f"{len(extra)} applied events are not in the log"
    assert applied == logged, "events were applied out of log order"


# --------------------------------------------------------------------------
# Read models against aggregate states


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes (stored in UTC); PostgreSQL aware ones."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def last_shown_event(
    service: SyncService, aggregate_id: uuid.UUID, topics: Sequence[str]
) -> Any:
    """The aggregate's last event among ``topics`` (what the read model shows)."""
    stored = [
        e for e in service.recorder.select_events(aggregate_id) if e.topic in topics
    ]
    return service.mapper.to_domain_event(stored[-1])


def json_text(value: Any) -> str | None:
    """How ``customers`` stores a field (a mapping as sorted compact JSON)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def order_row(state: Mapping[str, Any]) -> dict[str, Any]:
    """An order's ``orders`` columns, from its aggregate state, but for the
    version and time of its last change (which are the log's)."""
    row = {name: state["values"].get(name) for name in ORDER_COLUMNS}
    money = Order.money_of(state["values"])
    row["refunded_cents"] = money.refunded_cents
    row["disputed_cents"] = money.disputed_cents
    row["status"] = state["status"]
    return row


def expected_orders(
    service: SyncService,
    order_ids: Sequence[str],
    namespace: str = DEFAULT_NAMESPACE,
) -> dict[str, dict[str, Any]]:
    """The ``orders`` rows that the aggregates of ``namespace`` say should
    exist."""
    topics = OrdersProjection().topics
    rows = {}
    for order_id in dict.fromkeys(order_ids):
        state = service.state_of("order", order_id, namespace)
        if state is None or state["status"] is None:
            continue  # tracked for a parked delivery, never created
        last = last_shown_event(service, Order.create_id(order_id, namespace), topics)
        row = order_row(state)
        row["version"] = last.originator_version
        row["updated_at"] = as_utc(last.timestamp)
        rows[order_id] = row
    return rows


def expected_customers(
    service: SyncService,
    customer_ids: Sequence[str],
    namespace: str = DEFAULT_NAMESPACE,
) -> dict[str, dict[str, Any]]:
    """The ``customers`` rows that the aggregates of ``namespace`` say should
    exist."""
    topics = CustomersProjection().topics
    rows = {}
    for customer_id in dict.fromkeys(customer_ids):
        state = service.state_of("customer", customer_id, namespace)
        if state is None or state["status"] is None:
            continue
        last = last_shown_event(
            service, Customer.create_id(customer_id, namespace), topics
        )
        row: dict[str, Any] = {
            name: json_text(state["values"].get(name)) for name in CUSTOMER_FIELDS
        }
        row["deleted"] = state["status"] == "deleted"
        row["version"] = last.originator_version
        row["updated_at"] = as_utc(last.timestamp)
        rows[customer_id] = row
    return rows


def expected_revenue(orders: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per currency, the sums over the orders' paid, refunded and disputed
    amounts."""
    revenue: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(
            (
                "paid_cents",
                "refunded_cents",
                "net_cents",
                "orders_paid",
                "disputed_cents",
            ),
            0,
        )
    )
    for order in orders.values():
        if order["currency"] is None:
            continue
        paid, refunded = order["paid_cents"] or 0, order["refunded_cents"] or 0
        disputed = order["disputed_cents"]
        totals = revenue[order["currency"]]
        totals["paid_cents"] += paid
        totals["refunded_cents"] += refunded
        totals["disputed_cents"] += disputed
        totals["net_cents"] += paid - refunded - disputed
        totals["orders_paid"] += 1 if paid > 0 else 0
    return dict(revenue)


def table_rows(
    projection: Projection,
    table: str,
    engine: Engine,
    namespace: str = DEFAULT_NAMESPACE,
) -> dict[str, Any]:
    """A read model's rows by primary key but the namespace, all of which
    must be ``namespace``, typed by the projection's own table definition
    (SQLite keeps times as text)."""
    definition = projection.define(MetaData())[table]
    (key,) = (c for c in definition.primary_key.columns if c.name != "namespace")
    with engine.connect() as conn:
        rows = list(conn.execute(select(definition)).mappings())
    assert {row["namespace"] for row in rows} <= {namespace}
    found = {
        row[key.name]: {
            k: v for k, v in row.items() if k not in (key.name, "namespace")
        }
        for row in rows
    }
    for row in found.values():
        if isinstance(row.get("updated_at"), datetime):
            row["updated_at"] = as_utc(row["updated_at"])
    return found


def assert_rows_equal(
    table: str, found: Mapping[str, Any], expected: Mapping[str, Any]
) -> None:
    """``found == expected``, failing with the first differences, field by field."""
    if found == expected:
        return
    problems = [f"{table}: {len(found)} rows, expected {len(expected)}"]
    for key in sorted(set(found) | set(expected)):
        have, want = found.get(key), expected.get(key)
        if have == want:
            continue
        if have is None or want is None:
            problems.append(f"  {key}: row is {have}, expected {want}")
            continue
        fields = {
            name: (have.get(name), want.get(name))
            for name in set(have) | set(want)
            if have.get(name) != want.get(name)
        }
        problems.append(f"  {key}: (found, expected) {fields}")
        if len(problems) > 10:
            break
    pytest.fail("\n".join(problems))


def assert_read_models_match_aggregates(
    engine: Engine, service: SyncService, events: Sequence[Event]
) -> None:
    """``orders`` and ``customers`` row for row as the aggregates are;
    ``revenue`` equal to the sums over the orders."""
    order_ids = [e.object_id for e in events if e.kind == "order"]
    customer_ids = [e.object_id for e in events if e.kind == "customer"]
    orders = expected_orders(service, order_ids)
    assert_rows_equal(
        "orders", table_rows(OrdersProjection(), "orders", engine), orders
    )
    assert_rows_equal(
        "customers",
        table_rows(CustomersProjection(), "customers", engine),
        expected_customers(service, customer_ids),
    )
    assert_rows_equal(
        "revenue",
        table_rows(RevenueProjection(), "revenue", engine),
        expected_revenue(orders),
    )


def receipt_outcomes(service: SyncService) -> Counter[tuple[str, str]]:
    """(source, first outcome) of every ``Receipt.Issued`` in the log."""
    topic = get_topic(Receipt.Issued)  # type: ignore[attr-defined]  # made by @event
    counts: Counter[tuple[str, str]] = Counter()
    start = 1
    while True:
        page = service.recorder.select_notifications(
            start=start, limit=2000, topics=[topic]
        )
        for notification in page:
            issued = service.mapper.to_domain_event(notification)
            counts[(issued.source, issued.outcome)] += 1  # type: ignore[attr-defined]
        if len(page) < 2000:
            return counts
        start = page[-1].id + 1


def source_stats(engine: Engine) -> Counter[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT source, outcome, count FROM source_stats"))
        return Counter({(source, outcome): int(n) for source, outcome, n in rows})


# --------------------------------------------------------------------------
# Writing deliveries


def delivery(event: Event, number: int) -> Delivery:
    return Delivery(
        source=SOURCE,
        key=event.key,
        received_at=START + timedelta(milliseconds=number),
        payload=event.body,
    )


def receive_all(service: SyncService, events: Sequence[Event]) -> Counter[str]:
    """Deliver ``events`` one by one, as the webhook endpoint does."""
    outcomes: Counter[str] = Counter()
    for number, event in enumerate(events):
        answer = service.receive(delivery(event, number), map_standard(event.body, {}))
        outcomes[answer.outcome.value] += 1
    return outcomes


def commit_in_batches(
    service: SyncService, events: Sequence[Event], batch_size: int = 200
) -> None:
    """Record ``events`` fast: decided in order, many per save (group commit).
    A batch is committed before it would address an object twice (a decision
    reads committed state only)."""
    batch: list[Decision] = []
    objects: set[tuple[str, str]] = set()
    for number, event in enumerate(events):
        if event.object in objects or len(batch) >= batch_size:
            service.commit(batch)
            batch, objects = [], set()
        batch.append(
            service.decide(delivery(event, number), map_standard(event.body, {}))
        )
        objects.add(event.object)
    if batch:
        service.commit(batch)


_services: dict[str, SyncService] = {}


def deliver_from_process(
    url: str, shares: list[tuple[str, bytes]], first: int, barrier: Any
) -> list[str]:
    """In a writer process: its own service on ``url``; at the barrier, send
    its share of deliveries; returns their outcomes."""
    if url not in _services:
        for previous in _services.values():
            previous.close()
        _services.clear()
        _services[url] = SyncService(env=Database(url, pool_size=1).eventsourcing_env())
    service = _services[url]
    barrier.wait(timeout=60)
    outcomes = []
    for number, (key, body) in enumerate(shares, start=first):
        answer = service.receive(
            Delivery(SOURCE, key, START + timedelta(milliseconds=number), body),
            map_standard(body, {}),
        )
        outcomes.append(answer.outcome.value)
    return outcomes


# --------------------------------------------------------------------------
# Running runners


class RunnerThread:
    """``runner.run`` in a thread, until ``stop`` (or the end of a ``with``
    block). What the thread raised fails the test."""

    def __init__(
        self, runner: ProjectionRunner, leadership: Leadership | None = None
    ) -> None:
        self.runner = runner
        self.leadership = leadership
        self.stop_event = threading.Event()
        self.raised: list[BaseException] = []
        self.thread = threading.Thread(
            target=self._run, name="projection-runner", daemon=True
        )

    def _run(self) -> None:
        try:
            self.runner.run(self.stop_event, self.leadership)
        except BaseException as error:
            self.raised.append(error)
            raise

    def start(self) -> RunnerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop and join (idempotent): the runner closes its sessions."""
        self.stop_event.set()
        self.thread.join(timeout=WAIT_SECONDS)
        assert not self.thread.is_alive(), "the runner did not stop in time"
        assert not self.raised, f"the runner thread raised {self.raised[0]!r}"

    def __enter__(self) -> RunnerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_until(
    condition: Callable[[], bool],
    what: str,
    seen: Callable[[], object] = lambda: None,
    timeout: float = WAIT_SECONDS,
) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` saying ``what``
    was awaited and what was ``seen``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} after {timeout:.0f} s; seen: {seen()}")
        time.sleep(0.01)


def caught_up(runner: ProjectionRunner) -> bool:
    return all(s.position == s.head and s.state == "running" for s in runner.status())


def wait_caught_up(runner: ProjectionRunner) -> None:
    wait_until(lambda: caught_up(runner), "caught up", runner.status)


def status_of(runner: ProjectionRunner, name: str) -> Status:
    (status,) = [s for s in runner.status() if s.name == name]
    return status


def new_runner(
    url: str, *extra: Projection, batch_size: int = 7
) -> tuple[ProjectionRunner, Database]:
    """A runner over every projection plus ``extra``, with its own service
    and engine (as another process would have)."""
    database = Database(url, pool_size=2)
    service = SyncService(env=database.eventsourcing_env())
    projections = {**all_projections(), **{p.name: p for p in extra}}
    runner = ProjectionRunner(
        service,
        database.engine(),
        projections,
        batch_size=batch_size,
        poll_seconds=0.02,
    )
    return runner, database


@pytest.fixture
def runners(database_url: str) -> Iterator[Callable[..., ProjectionRunner]]:
    """Makes runners on the test's database (and its id probe table); closes
    them all at teardown."""
    made: list[tuple[ProjectionRunner, Database]] = []

    def make(*extra: Projection, batch_size: int = 7) -> ProjectionRunner:
        runner, database = new_runner(database_url, *extra, batch_size=batch_size)
        create_tables(database.engine(), *extra)
        made.append((runner, database))
        return runner

    yield make
    for runner, database in made:
        runner.service.close()
        database.close()


@pytest.fixture
def service(database_url: str) -> Iterator[SyncService]:
    """The test process's own writer and reader of the log."""
    database = Database(database_url, pool_size=2)
    writer = SyncService(env=database.eventsourcing_env())
    yield writer
    writer.close()
    database.close()


@pytest.fixture(scope="module")
def writer_pool() -> Iterator[tuple[ProcessPoolExecutor, Any]]:
    """Eight spawned processes for the module, and a barrier they fire at."""
    context = multiprocessing.get_context("spawn")
    with (
        context.Manager() as manager,
        ProcessPoolExecutor(PROCESSES, mp_context=context) as pool,
    ):
        yield pool, manager.Barrier(PROCESSES)


# --------------------------------------------------------------------------
# No event is skipped under concurrent writers


def test_a_runner_under_eight_writer_processes_skips_no_event_and_repeats_none(
    writer_pool: tuple[ProcessPoolExecutor, Any],
    database_url: str,
    runners: Callable[..., ProjectionRunner],
    service: SyncService,
) -> None:
    pool, barrier = writer_pool
    events = history(seed=61, orders=100, customers=25)
    deliveries = schedule(events, seed=62, duplicate_ratio=0.3)
    runner = runners(IdProbe())

    with RunnerThread(runner):
        futures = [
            pool.submit(
                deliver_from_process,
                database_url,
                [(e.key, e.body) for e in deliveries[i::PROCESSES]],
                i * len(deliveries),
                barrier,
            )
            for i in range(PROCESSES)
        ]
        outcomes = Counter(o for f in futures for o in f.result(timeout=120))
        wait_caught_up(runner)

    print(f"\n{len(deliveries)} deliveries from {PROCESSES} processes: {outcomes}")
    assert outcomes["duplicate"] == len(deliveries) - len(events)
    decided = {("acme", o): n for o, n in outcomes.items() if o != "duplicate"}
    assert source_stats(runner.engine) == decided
    assert sum(decided.values()) == len(events)
    assert_read_models_match_aggregates(runner.engine, service, events)
    assert_probe_matches_log(runner.engine, service)


# --------------------------------------------------------------------------
# Failure is visible and bounded


@pytest.fixture
def spied_states(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Short backoff; every state the runner records, in order."""
    monkeypatch.setattr(runner_module, "MAX_BACKOFF", 0.1)
    recorded: list[tuple[str, str]] = []
    original = positions.set_state

    def spy(
        conn: Connection, name: str, state: str, error: str | None, failures: int
    ) -> None:
        recorded.append((name, state))
        original(conn, name, state, error, failures)

    monkeypatch.setattr(positions, "set_state", spy)
    return recorded


def test_a_failing_projection_shows_retrying_then_failed_and_recovers_once_fixed(
    runners: Callable[..., ProjectionRunner],
    service: SyncService,
    spied_states: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = history(seed=71, orders=30, customers=8)
    before, poison, after = events[:40], events[40], events[41:]
    fault = threading.Event()
    fault.set()
    flaky = FlakyProbe(poison.key, fault)
    runner = runners(IdProbe(), flaky)
    # The runner pauses after its first recorded failure until the test has
    # seen it: "retrying" cannot slip by between two polls.
    seen_retrying = threading.Event()
    record_failure = runner._failed

    def failed_then_paused(name: str, error: Exception) -> None:
        record_failure(name, error)
        seen_retrying.wait(timeout=WAIT_SECONDS)

    monkeypatch.setattr(runner, "_failed", failed_then_paused)

    with RunnerThread(runner):
        receive_all(service, before)
        wait_caught_up(runner)  # every projection has its position row
        receive_all(service, [poison])
        wait_until(
            lambda: status_of(runner, flaky.name).state == "retrying",
            "retrying",
            runner.status,
        )
        retrying = status_of(runner, flaky.name)
        assert retrying.error is not None
        assert f"poisoned by delivery {poison.key}" in retrying.error
        seen_retrying.set()
        wait_until(
            lambda: status_of(runner, flaky.name).state == "failed",
            "failed",
            runner.status,
        )
        failed = status_of(runner, flaky.name)
        assert failed.error is not None
        assert f"poisoned by delivery {poison.key}" in failed.error
        assert failed.lag > 0

        receive_all(service, after)
        others = [name for name in runner.projections if name != flaky.name]
        wait_until(
            lambda: all(
                s.position == s.head and s.state == "running"
                for s in runner.status()
                if s.name in others
            ),
            "the other projections caught up",
            runner.status,
        )
        stuck = status_of(runner, flaky.name)
        assert stuck.state == "failed"
        assert stuck.position == failed.position < stuck.head

        fault.clear()
        wait_caught_up(runner)

    recovered = status_of(runner, flaky.name)
    assert (recovered.state, recovered.error, recovered.lag) == ("running", None, 0)
    flaky_states = [state for name, state in spied_states if name == flaky.name]
    assert flaky_states[: runner_module.QUICK_RETRIES] == [
        *["retrying"] * (runner_module.QUICK_RETRIES - 1),
        "failed",
    ]
    assert {name for name, _ in spied_states} == {flaky.name}
    assert_probe_matches_log(runner.engine, service, flaky.name)
    assert_probe_matches_log(runner.engine, service)
    assert_read_models_match_aggregates(runner.engine, service, events)


def test_a_new_projection_failing_on_its_first_batch_shows_its_failure(
    runners: Callable[..., ProjectionRunner],
    service: SyncService,
    spied_states: list[tuple[str, str]],
) -> None:
    """Its position row does not exist yet (the batch that would have made it
    was rolled back): the failure must still show."""
    events = history(seed=73, orders=3, customers=1)
    fault = threading.Event()
    fault.set()
    flaky = FlakyProbe(events[0].key, fault)
    runner = runners(flaky)
    receive_all(service, events)

    with RunnerThread(runner):
        wait_until(
            lambda: status_of(runner, flaky.name).state in ("retrying", "failed"),
            "its failure shown",
            runner.status,
            timeout=5.0,
        )
        status = status_of(runner, flaky.name)
        fault.clear()
        wait_caught_up(runner)

    assert spied_states[0] == (flaky.name, "retrying")
    assert status.error is not None
    assert f"poisoned by delivery {events[0].key}" in status.error
    assert_probe_matches_log(runner.engine, service, flaky.name)


# --------------------------------------------------------------------------
# Only one runner applies a projection at a time


def advisory_holders(url: str) -> dict[int, set[int]]:
    """PostgreSQL: the backends holding each session advisory lock
    (64-bit key = classid << 32 | objid) in this database."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT classid::bigint, objid::bigint, pid FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"
        ).fetchall()
    holders: dict[int, set[int]] = defaultdict(set)
    for high, low, pid in rows:
        key = (high << 32) | low
        holders[key - 2**64 if key >= 2**63 else key].add(pid)
    return dict(holders)


def backend_pid(leadership: AdvisoryLeadership) -> int:
    assert leadership.conn is not None and not leadership.conn.closed
    return leadership.conn.info.backend_pid


def test_two_runners_on_one_database_apply_every_event_exactly_once(
    database_url: str,
    runners: Callable[..., ProjectionRunner],
    service: SyncService,
) -> None:
    events = history(seed=81, orders=50, customers=12)
    deliveries = schedule(events, seed=82, duplicate_ratio=0.3)
    first, second = runners(IdProbe("a")), runners(IdProbe("b"))
    lead_a = Leadership.for_engine(first.engine)
    lead_b = Leadership.for_engine(second.engine)
    names = set(first.projections)
    split: tuple[set[str], set[str]] = (set(), set())

    with RunnerThread(first, lead_a), RunnerThread(second, lead_b):
        half = len(deliveries) // 2
        receive_all(service, deliveries[:half])
        if isinstance(lead_a, AdvisoryLeadership) and isinstance(
            lead_b, AdvisoryLeadership
        ):
            wait_until(
                lambda: lead_a.held | lead_b.held == names,
                "every projection led",
                lambda: (lead_a.held, lead_b.held),
            )
            split = (set(lead_a.held), set(lead_b.held))
            holders = advisory_holders(database_url)
            for name in names:  # what each runner believes is what PostgreSQL says
                leader = lead_a if name in lead_a.held else lead_b
                assert holders[lock_key(name)] == {backend_pid(leader)}, name
        receive_all(service, deliveries[half:])
        wait_caught_up(first)
        wait_caught_up(second)

    assert_probe_matches_log(first.engine, service)
    assert_read_models_match_aggregates(first.engine, service, events)
    if first.engine.dialect.name == "postgresql":
        held_a, held_b = split
        assert not held_a & held_b, f"both lead {held_a & held_b}"
        probe_leader = "a" if IdProbe.name in held_a else "b"
        appliers = {by for _, by in probe_rows(first.engine)}
        assert appliers == {probe_leader}, "the stand-by applied events"


POSTGRES_ONLY = pytest.mark.parametrize(
    "database_url",
    [pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
"""Leadership is a PostgreSQL advisory lock; on SQLite every runner leads."""


@POSTGRES_ONLY
def test_the_stand_by_takes_over_when_the_leaders_session_ends(
    runners: Callable[..., ProjectionRunner], service: SyncService
) -> None:
    events = history(seed=91, orders=40, customers=8)
    leader, standby = runners(IdProbe("a")), runners(IdProbe("b"))
    lead_a = AdvisoryLeadership(leader.engine)
    lead_b = AdvisoryLeadership(standby.engine)
    names = set(leader.projections)
    half = len(events) // 2

    leading = RunnerThread(leader, lead_a).start()
    try:
        wait_until(lambda: lead_a.held == names, "leading all", lambda: lead_a.held)
        with RunnerThread(standby, lead_b):
            receive_all(service, events[:half])
            wait_caught_up(leader)
            assert lead_b.held == set(), "the stand-by leads while the leader lives"
            applied_by_leader = len(probe_rows(leader.engine))

            leading.stop()  # as when its process ends: its session closes
            wait_until(
                lambda: lead_b.held == names,
                "the stand-by leading every projection",
                lambda: (lead_a.held, lead_b.held),
            )
            receive_all(service, events[half:])
            wait_caught_up(standby)
    finally:
        leading.stop()

    appliers = [by for _, by in probe_rows(leader.engine)]
    assert set(appliers[:applied_by_leader]) == {"a"}
    assert len(appliers) > applied_by_leader
    assert set(appliers[applied_by_leader:]) == {"b"}
    assert_probe_matches_log(leader.engine, service)
    assert_read_models_match_aggregates(leader.engine, service, events)


@POSTGRES_ONLY
def test_a_runner_whose_lock_session_is_terminated_stops_leading(
    database_url: str,
    runners: Callable[..., ProjectionRunner],
    service: SyncService,
) -> None:
    """Terminated, network loss, server restart: the stand-by takes the locks,
    and the old leader must notice within ``DEPOSED_SECONDS`` and stop
    applying (not only rely on the position row lock)."""
    leader, standby = runners(IdProbe("a")), runners(IdProbe("b"))
    lead_a = AdvisoryLeadership(leader.engine)
    lead_b = AdvisoryLeadership(standby.engine)
    names = set(leader.projections)
    with RunnerThread(leader, lead_a):
        wait_until(lambda: lead_a.held == names, "leading all", lambda: lead_a.held)
        with RunnerThread(standby, lead_b):
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid(lead_a),))
            wait_until(
                lambda: lead_b.held == names,
                "the stand-by leading",
                lambda: lead_b.held,
            )
            wait_until(
                lambda: not lead_a.held & lead_b.held,
                "the old leader letting go",
                lambda: (lead_a.held, lead_b.held),
                timeout=DEPOSED_SECONDS,
            )
            applied_before = len(probe_rows(leader.engine))
            receive_all(service, history(seed=93, orders=5, customers=1))
            wait_caught_up(standby)

    appliers = [by for _, by in probe_rows(leader.engine)]
    assert len(appliers) > applied_before
    assert set(appliers[applied_before:]) == {"b"}, "the old leader applied"
