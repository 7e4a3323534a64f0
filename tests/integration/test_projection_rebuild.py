"""Rebuilding projections from the log (specification §5, invariant 5, and
section 6), on both backends: equivalence under live traffic, repairing a
planted bug, dry runs, interrupted and crashed rebuilds, the CLI and the
admin endpoints."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, create_engine, inspect, select, text
from starlette.testclient import TestClient

from infrastructure.config_tables import ProjectionsTable
from infrastructure.settings import Settings
from projections import positions
from projections import rebuild as rebuild_module
from projections.base import Tables
from projections.orders import OrdersProjection
from projections.rebuild import Progress, RebuildRunning, rebuild
from projections.revenue import RevenueProjection
from projections.runner import ProjectionRunner
from tests.buggy_projection import DoubleCountingRevenue
from tests.histories import Event, history, schedule
from tests.partner import Partner, auth, make_settings, post, send
from tests.store import Store
from web import admin
from web.app import create_app
from web.state import app_state

ROOT = Path(__file__).resolve().parents[2]
INCREMENTAL = "__inc"


def deliver(client: TestClient, partner: Partner, events: list[Event]) -> None:
    for event in events:
        response = send(client, partner.sign(event.body, key=event.key))
        assert response.status_code in (200, 202), response.text


def rows(engine: Engine, tables: Tables) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` (by base name), ordered by primary key."""
    with engine.connect() as conn:
        return {
            name: [
                tuple(row)
                for row in conn.execute(
                    select(table).order_by(*table.primary_key.columns)
                )
            ]
            for name, table in tables.items()
        }


def leftovers(engine: Engine) -> list[str]:
    """Shadow or old tables, and shadow position rows, in the database."""
    with engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        names = conn.execute(select(positions.positions.c.name)).scalars().all()
    return sorted(n for n in [*tables, *names] if "__r" in n or "__old" in n)


def drained(runner: ProjectionRunner, *extra: str, timeout: float = 30.0) -> None:
    """Wait until the live projections and the ``extra`` position rows have
    reached the head of the log."""
    deadline = time.monotonic() + timeout
    while True:
        head = runner.head()
        with runner.engine.connect() as conn:
            behind = [
                name
                for name in [*runner.projections, *extra]
                if (row := positions.read(conn, name)) is None or row.position < head
            ]
        if not behind:
            return
        assert time.monotonic() < deadline, f"still behind the head: {behind}"
        time.sleep(0.05)


class IncrementalCopy:
    """A second build of every projection, by the same code from the same log,
    into tables suffixed ``__inc`` (positions ``<name>__inc``): a few events
    per transaction, interleaved with the traffic, and never rebuilt."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self.runner = runner
        self.tables = {
            name: projection.define(MetaData(), INCREMENTAL)
            for name, projection in runner.projections.items()
        }
        for tables in self.tables.values():
            next(iter(tables.values())).metadata.create_all(runner.engine)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def position_names(self) -> list[str]:
        return [f"{name}{INCREMENTAL}" for name in self.runner.projections]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                for name, tables in self.tables.items():
                    self.runner.step(
                        name,
                        tables=tables,
                        position_name=f"{name}{INCREMENTAL}",
                        batch_size=7,
                    )
            except Exception as error:  # reported by the test
                self.errors.append(error)
                return
            time.sleep(0.01)

    def __enter__(self) -> IncrementalCopy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[Exception]]:
    errors: list[Exception] = []

    def run() -> None:
        try:
            target()
        except Exception as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_a_projection_rebuilt_under_live_traffic_equals_one_built_incrementally(
    settings: Settings, partner: Partner
) -> None:
    """Duplicated and reordered deliveries build the read models incrementally
    (the app's runner) while a second, independent incremental copy is built
    beside them, a few events per transaction (``IncrementalCopy``). Every
    projection is then rebuilt while deliveries keep arriving (each rebuild
    batch waits for one more delivery, so they interleave) and reads keep
    answering; once everything has drained to the same head, the rebuilt
    tables must equal the incremental copy row for row.

    Why this comparison is fair: the copy is what the live model would be had
    it never been rebuilt (same code, same log, incremental, never replayed),
    and both are compared at the same position of the log. A snapshot of the
    live model taken before the rebuild would not be: traffic goes on, so it
    would describe an older position."""
    events = schedule(history(11, orders=30, customers=10), seed=12)
    half = len(events) // 2
    with TestClient(create_app(settings)) as client:
        runner: ProjectionRunner = app_state(client.app).runner
        with IncrementalCopy(runner) as copy:
            deliver(client, partner, events[:half])
            drained(runner, *copy.position_names)

            sent = threading.Semaphore(0)
            rebuilding, done = threading.Event(), threading.Event()
            during = {"reads": 0, "deliveries": 0}

            def sender() -> None:
                for event in events[half:]:
                    deliver(client, partner, [event])
                    during["deliveries"] += rebuilding.is_set()
                    sent.release()

            def reader() -> None:
                engine = create_engine(runner.engine.url)
                try:
                    while not done.is_set():
                        with engine.connect() as conn:
                            for table in ("orders", "customers", "revenue"):
                                conn.execute(text(f"SELECT count(*) FROM {table}"))
                        during["reads"] += rebuilding.is_set()
                        time.sleep(0.005)
                finally:
                    engine.dispose()

            def interleave(progress: Progress) -> None:
                if progress.phase in ("replay", "catch-up"):
                    sent.acquire(timeout=2)  # one more delivery per batch

            sending, send_errors = in_thread(sender)
            reading, read_errors = in_thread(reader)
            rebuilding.set()
            reports = [
                rebuild(runner, name, batch_size=10, progress=interleave)
                for name in runner.projections
            ]
            rebuilding.clear()
            sending.join(timeout=60)
            drained(runner, *copy.position_names)
            done.set()
            reading.join(timeout=10)

        assert not (copy.errors or send_errors or read_errors)
        assert all(report.swapped for report in reports)
        assert during["reads"] > 0 and during["deliveries"] > 0
        for name in runner.projections:
            assert rows(runner.engine, runner.tables[name]) == rows(
                runner.engine, copy.tables[name]
            ), name
        assert leftovers(runner.engine) == []
        assert rows(runner.engine, runner.tables["orders"])["orders"]


def revenue_rows(engine: Engine) -> dict[str, tuple[int, int, int, int]]:
    with engine.connect() as conn:
        return {
            currency: (paid, refunded, net, orders)
            for currency, paid, refunded, net, orders in conn.execute(
                text(
                    "SELECT currency, paid_cents, refunded_cents, net_cents, "
                    "orders_paid FROM revenue"
                )
            )
        }


def test_a_double_counting_bug_is_reported_by_verify_and_repaired_by_a_rebuild(
    settings: Settings, partner: Partner, store: Store
) -> None:
    orders = {"ord_1": ("EUR", 5000, 0), "ord_2": ("EUR", 2500, 1000)}
    orders["ord_3"] = ("USD", 700, 0)
    app = create_app(
        dataclasses.replace(settings, projections=ProjectionsTable(in_serve=False))
    )
    with TestClient(app) as client:
        for order_id, (currency, paid, refunded) in orders.items():
            post(client, partner.order_created(order_id, currency=currency))
            post(
                client,
                partner.event("order.paid", order_id=order_id, amount_cents=paid),
            )
            if refunded:
                refund = partner.event(
                    "order.refunded", order_id=order_id, amount_cents=refunded
                )
                post(client, refund)
    engine = store.database.engine()
    buggy = ProjectionRunner(
        store.service, engine, {"revenue": DoubleCountingRevenue()}
    )
    buggy.catch_up("revenue")
    assert revenue_rows(engine) == {
        "EUR": (15000, 1000, 14000, 2),
        "USD": (1400, 0, 1400, 1),
    }

    fixed = ProjectionRunner(store.service, engine, {"revenue": RevenueProjection()})
    check = rebuild(fixed, "revenue", verify=True, dry_run=True)
    assert not check.swapped
    assert check.compared_at == fixed.head()
    assert {d.table: d.differing for d in check.differences or ()} == {
        "revenue": 2,
        "revenue_orders": 0,
    }
    euros = next(d for d in check.differences or () if d.table == "revenue")
    assert euros.examples[0]["key"] == {"namespace": "acme", "currency": "EUR"}
    assert euros.examples[0]["live"]["paid_cents"] == 15000
    assert euros.examples[0]["rebuilt"]["paid_cents"] == 7500
    assert revenue_rows(engine)["EUR"] == (15000, 1000, 14000, 2)

    report = rebuild(fixed, "revenue", verify=True)
    assert report.swapped and report.differing_rows == 2
    assert revenue_rows(engine) == {
        "EUR": (7500, 1000, 6500, 2),
        "USD": (700, 0, 700, 1),
    }
    assert rebuild(fixed, "revenue", dry_run=True).differing_rows == 0
    assert fixed.status()[0].lag == 0


def test_verify_compares_at_one_position_when_the_live_projection_lags_behind(
    settings: Settings, partner: Partner, store: Store
) -> None:
    """No runner is running (a server that is down): the live projection is
    behind the head. The comparison first applies its missing events to it,
    inside the final transaction (rolled back in a dry run), so that only
    real differences are reported."""
    events = schedule(history(13, orders=8, customers=3), seed=14)
    engine = store.database.engine()
    runner = ProjectionRunner(store.service, engine, {"orders": OrdersProjection()})
    app = create_app(
        dataclasses.replace(settings, projections=ProjectionsTable(in_serve=False))
    )
    with TestClient(app) as client:
        deliver(client, partner, events[:10])
        runner.catch_up("orders")
        behind = runner.status()[0].position
        live = rows(engine, runner.tables["orders"])
        deliver(client, partner, events[10:])
    assert runner.status()[0].lag > 0

    check = rebuild(runner, "orders", verify=True, dry_run=True)
    assert (check.differing_rows, check.note) == (0, None)
    assert check.compared_at == runner.head()
    assert runner.status()[0].position == behind
    assert rows(engine, runner.tables["orders"]) == live

    report = rebuild(runner, "orders", verify=True)
    assert (report.swapped, report.differing_rows, report.note) == (True, 0, None)
    assert runner.status()[0].lag == 0


def test_a_dry_run_compares_and_leaves_the_live_model_and_its_schema_alone(
    client: TestClient, partner: Partner
) -> None:
    runner: ProjectionRunner = app_state(client.app).runner
    deliver(client, partner, schedule(history(3, orders=6, customers=3), seed=4))
    drained(runner)

    def everything() -> tuple[Any, ...]:
        with runner.engine.connect() as conn:
            schema = inspect(conn)
            names = sorted(schema.get_table_names())
            indexes = {t: schema.get_indexes(t) for t in names}
            places = conn.execute(select(positions.positions)).all()
        tables = {n: rows(runner.engine, t) for n, t in runner.tables.items()}
        return names, indexes, sorted(places), tables

    before = everything()
    for name in runner.projections:
        report = rebuild(runner, name, dry_run=True)
        assert (report.swapped, report.differing_rows) == (False, 0)
        assert report.differences is not None and report.events > 0
    assert everything() == before


class Interrupted(Exception):
    """Stands for Ctrl-C in the middle of a rebuild."""


def test_an_interrupted_rebuild_cleans_up_and_a_crashed_ones_shadow_goes_next_time(
    client: TestClient, partner: Partner
) -> None:
    runner: ProjectionRunner = app_state(client.app).runner
    deliver(client, partner, schedule(history(5, orders=8, customers=2), seed=6))
    drained(runner)
    before = rows(runner.engine, runner.tables["orders"])

    def schema() -> tuple[Any, ...]:
        with runner.engine.connect() as conn:
            found = inspect(conn)
            return found.get_indexes("orders"), found.get_pk_constraint("orders")

    migrated = schema()

    def interrupt(progress: Progress) -> None:
        assert leftovers(runner.engine) != []  # the shadow is there
        raise Interrupted

    with pytest.raises(Interrupted):
        rebuild(runner, "orders", batch_size=5, progress=interrupt)
    assert leftovers(runner.engine) == []

    # A killed process runs no cleanup: its shadow stays until the next one.
    crashed = OrdersProjection().define(MetaData(), "__r1700000000000")
    crashed["orders"].metadata.create_all(runner.engine)
    with runner.engine.begin() as conn:
        positions.lock(conn, "orders__r1700000000000")
    assert len(leftovers(runner.engine)) == len(crashed) + 1  # tables, position
    report = rebuild(runner, "orders", verify=True)
    assert report.swapped and report.differing_rows == 0
    assert leftovers(runner.engine) == []
    assert rows(runner.engine, runner.tables["orders"]) == before
    assert schema() == migrated  # index and key names as the migration made them


def test_a_second_rebuild_of_the_same_projection_is_refused_while_one_runs(
    client: TestClient, partner: Partner
) -> None:
    runner: ProjectionRunner = app_state(client.app).runner
    deliver(client, partner, schedule(history(9, orders=4, customers=1), seed=9))
    started, release = threading.Event(), threading.Event()

    def hold(progress: Progress) -> None:
        started.set()
        release.wait(10)

    first, errors = in_thread(lambda: rebuild(runner, "customers", progress=hold))
    assert started.wait(10)
    with pytest.raises(RebuildRunning):
        rebuild(runner, "customers")
    assert rebuild(runner, "orders").swapped  # another projection: fine
    release.set()
    first.join(timeout=10)
    assert errors == []


@pytest.mark.parametrize(
    "database_url",
    [pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
def test_a_long_read_of_a_live_table_makes_the_swap_retry_not_queue_every_reader(
    client: TestClient,
    partner: Partner,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL: a rename waits for every reader of the table, and every
    reader after it waits for the rename. The final transaction gives up
    after ``LOCK_TIMEOUT`` and tries again later instead."""
    # PostgreSQL only: on SQLite (WAL) readers never block a rename.
    monkeypatch.setattr(rebuild_module, "LOCK_TIMEOUT", "100ms")
    runner: ProjectionRunner = app_state(client.app).runner
    deliver(client, partner, schedule(history(8, orders=3, customers=1), seed=8))
    drained(runner)
    swaps: list[Progress] = []

    def record(progress: Progress) -> None:
        if progress.phase == "swap":
            swaps.append(progress)

    reader = create_engine(runner.engine.url)
    with reader.connect() as conn:
        conn.execute(text("SELECT count(*) FROM orders"))  # holds its lock
        rebuilding, errors = in_thread(
            lambda: rebuild(runner, "orders", progress=record)
        )
        deadline = time.monotonic() + 10
        while len(swaps) < 2:
            assert time.monotonic() < deadline and not errors
            time.sleep(0.02)
        conn.rollback()
    rebuilding.join(timeout=10)
    reader.dispose()
    assert errors == [] and leftovers(runner.engine) == []


@pytest.fixture
def sqlite_with_data(
    sqlite_template: Path, tmp_path: Path, secret: str, partner: Partner
) -> Iterator[str]:
    """A migrated SQLite file with some deliveries, projected."""
    path = tmp_path / "cli.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    with TestClient(create_app(make_settings(url, secret))) as client:
        deliver(client, partner, schedule(history(2, orders=10, customers=4), seed=3))
        drained(app_state(client.app).runner)  # type: ignore[attr-defined]
    yield url


def idemsync(url: str, secret: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    config = tmp_path / "idemsync.toml"
    config.write_text(
        '[sources.acme]\nscheme = "standard-webhooks"\n'
        'secrets = ["env:REBUILD_TEST_SECRET"]\n'
    )
    env = {
        **os.environ,
        "IDEMSYNC_DATABASE_URL": url,
        "IDEMSYNC_CONFIG": str(config),
        "REBUILD_TEST_SECRET": secret,
        "COLUMNS": "100",
    }
    done = subprocess.run(
        [sys.executable, "-m", "idemsync", "projections", "rebuild", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_the_cli_shows_progress_and_a_summary_and_a_failed_check_exits_1(
    sqlite_with_data: str, secret: str, tmp_path: Path
) -> None:
    code, output = idemsync(sqlite_with_data, secret, tmp_path, "--all", "--verify")
    assert code == 0, output
    assert "100%" in output and "events/s" in output and "ETA" in output
    for name in ("orders", "customers", "revenue", "source_stats"):
        assert name in output
    assert "swapped" in output and "differing rows" in output

    engine = create_engine(sqlite_with_data)
    with engine.begin() as conn:
        conn.execute(text("UPDATE revenue SET paid_cents = paid_cents + 1"))
    planted = revenue_rows(engine)
    code, output = idemsync(
        sqlite_with_data, secret, tmp_path, "revenue", "--dry-run", "--verify"
    )
    assert code == 1, output
    assert "dry run" in output and "revenue: " in output and "paid_cents" in output
    assert revenue_rows(engine) == planted

    code, output = idemsync(sqlite_with_data, secret, tmp_path, "revenue")
    assert code == 0, output
    assert revenue_rows(engine) != planted
    engine.dispose()


def test_admin_shows_status_and_rebuilds_in_the_background_one_at_a_time(
    settings: Settings, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real_rebuild = admin.rebuild

    def gated_rebuild(*args: Any, **kwargs: Any) -> Any:
        gate.wait(10)
        return real_rebuild(*args, **kwargs)

    monkeypatch.setattr(admin, "rebuild", gated_rebuild)
    with TestClient(create_app(settings), headers=auth("admin")) as client:
        runner: ProjectionRunner = app_state(client.app).runner
        deliver(client, partner, schedule(history(4, orders=5, customers=2), seed=5))
        drained(runner)

        statuses = client.get("/admin/projections").json()["projections"]
        assert [s["name"] for s in statuses] == list(runner.projections)
        head = runner.head()
        for status in statuses:
            assert (status["position"], status["head"], status["lag"]) == (
                head,
                head,
                0,
            )
            assert (status["state"], status["error"]) == ("running", None)

        url = "/admin/projections/revenue/rebuild"
        assert client.get(url).json() == {"name": "revenue", "state": "none"}
        started = client.post(f"{url}?verify=1")
        assert started.status_code == 202
        assert started.json()["status_url"] == url == started.headers["location"]
        assert started.json()["state"] == "running"
        assert client.post(url).status_code == 409
        assert client.post("/admin/projections/nope/rebuild").status_code == 404
        gate.set()

        deadline = time.monotonic() + 20
        while (job := client.get(url).json())["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job["state"] == "done", job
        assert job["verify"] is True and job["dry_run"] is False
        report = job["report"]
        assert report["swapped"] is True and report["differing_rows"] == 0
        assert report["events"] > 0 and report["position"] == head
        assert job["progress"]["phase"] == "done"
        statuses = client.get("/admin/projections").json()["projections"]
        assert next(s for s in statuses if s["name"] == "revenue")["rebuild"] == "done"
