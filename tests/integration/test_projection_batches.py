"""Batch folds (``Projection.process_batch``) on both backends: whatever the
batch boundaries, a projection leaves exactly the rows that applying the
events one at a time leaves (specification §5.5: a rebuild replays in
batches of thousands, the live runner in batches of ten to a few hundred).

The log comes from random valid histories (``tests.histories``), delivered
in a shuffled schedule with retries through an in-memory ``SyncService``, so
it holds parked, stale and applied deliveries, receipts from two sources at
random receive times, and several events per object. Each projection then
builds three copies of its tables from the same decoded events: one event
per ``process`` call, random batches (each its own transaction), and the
whole log as one batch; the three must be equal row for row. That the rows
are the right ones is checked against the aggregates in
``test_projection_runner.py``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, MetaData, select

from domain.application import SyncService
from domain.delivery import Delivery
from infrastructure.mappings.standard import map_standard
from infrastructure.persistence.database import Database
from projections import positions
from projections import runner as runner_module
from projections.base import Projection, Tables
from projections.catalog import all_projections
from projections.fold import CHUNK
from projections.runner import ProjectionRunner
from tests.histories import MEMORY_ENV, START, history, schedule

SOURCES = ("acme", "globex")


def deliver(service: SyncService, seed: int, orders: int, customers: int) -> None:
    """A random history's shuffled delivery, with retries, from two sources
    at random receive times."""
    rng = random.Random(seed)
    events = schedule(history(seed, orders, customers), seed, duplicate_ratio=0.3)
    for event in events:
        moment = START + timedelta(seconds=rng.randint(0, 86_400))
        delivery = Delivery(rng.choice(SOURCES), event.key, moment, event.body)
        service.receive(delivery, map_standard(event.body, {}))


def decoded_log(seed: int, orders: int, customers: int) -> list[tuple[str, Any]]:
    """Every event of a random history's shuffled delivery, decoded, with its
    topic, in log order."""
    service = SyncService(env=MEMORY_ENV)
    try:
        deliver(service, seed, orders, customers)
        notifications = service.recorder.select_notifications(1, limit=100_000)
        return [(n.topic, service.mapper.to_domain_event(n)) for n in notifications]
    finally:
        service.close()


def rows(engine: Engine, tables: Tables) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables``, ordered by primary key."""
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


def build(
    engine: Engine,
    projection: Projection,
    events: Sequence[Any],
    batches: Sequence[int] | None,
) -> dict[str, list[tuple[Any, ...]]]:
    """The projection's rows after ``events``, into fresh tables: one event
    per ``process`` call (``batches`` None), or ``process_batch`` on batches
    of the given sizes (cycled), each batch its own transaction."""
    metadata = MetaData()
    tables = projection.define(metadata, f"__t{uuid.uuid4().hex[:8]}")
    metadata.create_all(engine)
    try:
        if batches is None:
            with engine.begin() as conn:
                for event in events:
                    projection.process(conn, tables, event)
        else:
            start, turn = 0, 0
            while start < len(events):
                size = batches[turn % len(batches)]
                with engine.begin() as conn:
                    projection.process_batch(conn, tables, events[start : start + size])
                start, turn = start + size, turn + 1
        return rows(engine, tables)
    finally:
        metadata.drop_all(engine)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    orders=st.integers(1, 25),
    customers=st.integers(0, 8),
    batches=st.lists(st.integers(1, 40), min_size=1, max_size=6),
)
def test_a_batch_fold_leaves_the_rows_of_event_by_event_processing(
    engine: Engine, seed: int, orders: int, customers: int, batches: list[int]
) -> None:
    log = decoded_log(seed, orders, customers)
    for name, projection in all_projections().items():
        events = [event for topic, event in log if topic in projection.topics]
        one_by_one = build(engine, projection, events, None)
        assert build(engine, projection, events, batches) == one_by_one, name
        assert build(engine, projection, events, [len(events) or 1]) == one_by_one
        assert any(one_by_one.values()) or not events, name


def test_a_batch_touching_more_rows_than_one_select_loads_is_still_exact(
    engine: Engine,
) -> None:
    """More orders in one batch than ``fold.CHUNK`` keys (SQLite loads them
    in several ``SELECT``s), folded on top of rows an earlier batch stored."""
    log = decoded_log(7, orders=CHUNK + 40, customers=3)
    for name, projection in all_projections().items():
        events = [event for topic, event in log if topic in projection.topics]
        half = len(events) // 2
        expected = build(engine, projection, events, None)
        batched = build(engine, projection, events, [half, len(events)])
        assert batched == expected, name


def test_a_runner_reading_through_narrow_windows_reaches_the_same_rows(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a read window of a few notification ids (``runner.READ_WINDOW``),
    most batches stop at the window's end, many with none of the
    projection's events: the runner still ends at the head with the rows of
    one batch of everything."""
    service = SyncService(env=Database(database_url).eventsourcing_env())
    try:
        deliver(service, 5, orders=12, customers=4)
        runner = ProjectionRunner(service, engine, all_projections(), batch_size=4)
        head = runner.head()
        log = [
            (n.topic, service.mapper.to_domain_event(n))
            for n in service.recorder.select_notifications(1, limit=100_000)
        ]
        monkeypatch.setattr(runner_module, "READ_WINDOW", 3)
        for name, projection in runner.projections.items():
            events = [event for topic, event in log if topic in projection.topics]
            metadata = MetaData()
            tables = projection.define(metadata, "__w")
            metadata.create_all(engine)
            steps, applied, more = 0, 0, True
            while more:
                count, more = runner.step(
                    name, tables=tables, position_name=f"{name}__w", batch_size=4
                )
                steps, applied = steps + 1, applied + count
            with engine.connect() as conn:
                position = positions.read(conn, f"{name}__w")
            assert position is not None and position.position == head, name
            assert applied == len(events), name
            assert steps >= head // 32, name  # windows of 32 ids (8 * 4)
            assert rows(engine, tables) == build(engine, projection, events, [10**6])
            metadata.drop_all(engine)
    finally:
        service.close()


def test_a_runner_notices_its_position_reset_behind_its_back(
    database_url: str, engine: Engine
) -> None:
    """A runner remembers where its last batch left a position; when that
    position is reset (tables emptied, position row removed) it replays
    from the start instead of believing it is done."""
    service = SyncService(env=Database(database_url).eventsourcing_env())
    try:
        deliver(service, 9, orders=6, customers=2)
        runner = ProjectionRunner(service, engine, all_projections(), batch_size=5)
        projection = runner.projections["orders"]
        metadata = MetaData()
        tables = projection.define(metadata, "__x")
        metadata.create_all(engine)

        def drain() -> int:
            total, more = 0, True
            while more:
                count, more = runner.step(
                    "orders", tables=tables, position_name="orders__x"
                )
                total += count
            return total

        applied = drain()
        first = rows(engine, tables)
        with engine.begin() as conn:
            conn.execute(tables["orders"].delete())
            positions.remove(conn, "orders__x")
        again = drain()
        assert again == applied > 0
        assert rows(engine, tables) == first
        metadata.drop_all(engine)
    finally:
        service.close()
