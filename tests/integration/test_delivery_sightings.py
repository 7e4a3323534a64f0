"""A delivery record's ``attempts`` and ``last_seen_at``: duplicates are
counted in memory with no write on their path, and written by a flush
(periodic, and at shutdown); a flush while the store is unreachable keeps
them for the next one. Through the real ASGI app, on both backends."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.testclient import TestClient

from domain.application import SyncService
from domain.delivery import FirstAnswer
from infrastructure.config_tables import ProjectionsTable
from infrastructure.persistence.database import Database
from infrastructure.persistence.deliveries import moment
from infrastructure.persistence.ledger import parse_time
from infrastructure.pipeline import Pipeline
from infrastructure.settings import Settings
from infrastructure.sightings import Sightings
from tests.conftest import pg_execute
from tests.partner import Partner, post
from tests.store import Store
from web.app import create_app
from web.state import app_state


def quiet_app(settings: Settings) -> Starlette:
    """The app with no projection runner and no periodic flush: only an
    explicit ``flush`` (or the shutdown) writes sightings."""
    quiet = dataclasses.replace(settings, projections=ProjectionsTable(in_serve=False))
    return create_app(quiet, sightings_flush_seconds=3600)


def seen(record: dict[str, Any]) -> tuple[int, datetime | None]:
    last = record["last_seen_at"]
    return record["attempts"], None if last is None else parse_time(last)


def without_sightings(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("attempts", "last_seen_at")}


def row_version(database_url: str, key: str) -> str | None:
    """PostgreSQL's ``xmin`` of the record: it changes on any write to it."""
    if not database_url.startswith("postgresql"):
        return None
    with Database(database_url).engine().connect() as conn:
        return str(
            conn.execute(
                text("SELECT xmin::text FROM deliveries WHERE idempotency_key = :k"),
                {"k": key},
            ).scalar_one()
        )


def test_three_duplicates_give_four_attempts_and_the_last_ones_time_after_a_flush(
    settings: Settings, partner: Partner, store: Store
) -> None:
    app = quiet_app(settings)
    request = partner.order_created("ord_1")
    with TestClient(app) as client:
        assert post(client, request)[1]["outcome"] == "applied"
        windows = []
        for _ in range(3):
            before = datetime.now(UTC)
            assert post(client, request)[1]["outcome"] == "duplicate"
            windows.append((before, datetime.now(UTC)))
        pending = app_state(app).sightings.snapshot()[("acme", request.key)]
        assert pending.count == 3
        assert windows[2][0] <= pending.last_seen_at <= windows[2][1]
        assert pending.last_seen_at > windows[1][1]
        assert app_state(app).sightings.flush() == 1
        record = store.delivery("acme", request.key)
        assert record is not None
        assert seen(record) == (4, pending.last_seen_at)
        assert parse_time(record["received_at"]) < pending.last_seen_at


def test_a_duplicate_writes_nothing_until_the_flush(
    settings: Settings, partner: Partner, store: Store
) -> None:
    app = quiet_app(settings)
    request = partner.order_created("ord_1")
    with TestClient(app) as client:
        post(client, request)
        before = store.delivery("acme", request.key)
        assert before is not None and seen(before) == (1, None)
        version = row_version(settings.database_url, request.key)
        for _ in range(3):
            assert post(client, request)[1]["outcome"] == "duplicate"
        assert store.delivery("acme", request.key) == before
        assert row_version(settings.database_url, request.key) == version
        app_state(app).sightings.flush()
        after = store.delivery("acme", request.key)
        assert after is not None and after["attempts"] == 4
        assert after["last_seen_at"] is not None
        assert without_sightings(after) == without_sightings(before)


def test_the_app_flushes_the_sightings_when_it_shuts_down(
    settings: Settings, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_1")
    with TestClient(quiet_app(settings)) as client:
        post(client, request)
        post(client, request)
        post(client, request)
        record = store.delivery("acme", request.key)
        assert record is not None and record["attempts"] == 1
    record = store.delivery("acme", request.key)
    assert record is not None and record["attempts"] == 3
    assert record["last_seen_at"] is not None


def test_the_app_flushes_the_sightings_every_interval(
    settings: Settings, partner: Partner, store: Store
) -> None:
    quiet = dataclasses.replace(settings, projections=ProjectionsTable(in_serve=False))
    request = partner.order_created("ord_1")
    with TestClient(create_app(quiet, sightings_flush_seconds=0.05)) as client:
        post(client, request)
        post(client, request)
        attempts = 1
        for _ in range(200):
            record = store.delivery("acme", request.key)
            assert record is not None
            attempts = record["attempts"]
            if attempts == 2:
                break
            time.sleep(0.02)
        assert attempts == 2


class RacingService(SyncService):
    """Its next lookup misses, as when another writer commits the same key
    between the intake's lookup and this writer's commit."""

    name = SyncService.name
    miss_next = False

    def first_answer(
        self,
        source: str,
        key: str,
        in_log: bool = False,
        *,
        fingerprint: str | None = None,
    ) -> FirstAnswer | None:
        if self.miss_next:
            self.miss_next = False
            return None
        return super().first_answer(source, key, in_log, fingerprint=fingerprint)


def test_a_duplicate_found_by_the_service_after_a_lost_race_is_counted_too(
    settings: Settings, partner: Partner, store: Store
) -> None:
    database = Database(settings.database_url)
    service = RacingService(env=database.eventsourcing_env())
    sightings = Sightings(database.engine())
    intake = Pipeline(settings, service, sightings=sightings)
    request = partner.order_created("ord_1")
    try:
        assert (
            intake.receive("acme", request.headers, request.body).outcome == "applied"
        )
        service.miss_next = True
        answer = intake.receive("acme", request.headers, request.body)
        assert answer.outcome == "duplicate"
        assert sightings.pending == 1
        sightings.flush()
    finally:
        service.close()
        database.close()
    record = store.delivery("acme", request.key)
    assert record is not None and record["attempts"] == 2


def insert_record(engine: Engine, key: str, received_at: datetime) -> None:
    """A delivery record as the recorders write it."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO deliveries (source, idempotency_key, received_at, "
                "outcome, answer, payload, headers) "
                "VALUES ('acme', :k, :at, 'applied', '{}', :p, '{}')"
            ),
            {"k": key, "at": moment(engine, received_at), "p": b"{}"},
        )


@contextmanager
def unreachable(database_url: str, engine: Engine) -> Iterator[None]:
    """The store cannot be reached: PostgreSQL refuses connections to the
    database; the SQLite file cannot be opened (a directory in its place)."""
    engine.dispose()
    if database_url.startswith("postgresql"):
        name = database_url.rsplit("/", 1)[1]
        pg_execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        pg_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        try:
            yield
        finally:
            pg_execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        return
    path = Path(database_url.removeprefix("sqlite:///"))
    away = path.with_suffix(".away")
    os.rename(path, away)
    path.mkdir()
    try:
        yield
    finally:
        path.rmdir()
        os.rename(away, path)


def test_a_flush_while_the_store_is_unreachable_keeps_the_counts_for_a_later_flush(
    database_url: str, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(database_url)
    engine = database.engine()
    key = f"msg_{uuid.uuid4().hex}"
    start = datetime.now(UTC).replace(microsecond=0)
    insert_record(engine, key, start)
    sightings = Sightings(engine)
    sightings.record("acme", key, start + timedelta(seconds=1))
    sightings.record("acme", key, start + timedelta(seconds=2))
    store.database.close()
    try:
        with unreachable(database_url, engine), caplog.at_level(logging.WARNING):
            assert sightings.flush() == 0
            sightings.record("acme", key, start + timedelta(seconds=3))
            assert sightings.flush() == 0
        assert sightings.pending == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per outage, not once per flush
        assert "kept for the next flush" in warnings[0].getMessage()
        sightings.record("acme", key, start + timedelta(seconds=4))
        assert sightings.flush() == 1
    finally:
        database.close()
    record = store.delivery("acme", key)
    assert record is not None
    assert seen(record) == (5, start + timedelta(seconds=4))


def test_a_flush_keeps_the_later_last_seen_at_and_skips_a_pruned_record(
    database_url: str, store: Store
) -> None:
    database = Database(database_url)
    engine = database.engine()
    start = datetime.now(UTC)
    insert_record(engine, "kept", start)
    try:
        later, earlier = Sightings(engine), Sightings(engine)
        later.record("acme", "kept", start + timedelta(seconds=9))
        earlier.record("acme", "kept", start + timedelta(seconds=5))
        earlier.record("acme", "pruned", start + timedelta(seconds=5))
        later.flush()
        assert earlier.flush() == 2
        assert earlier.pending == 0
    finally:
        database.close()
    record = store.delivery("acme", "kept")
    assert record is not None
    assert seen(record) == (3, start + timedelta(seconds=9))
    assert store.delivery("acme", "pruned") is None
