"""Global checkpoints, on both backends: written by ``idemsync serve`` every
few seconds, never forked by several checkpointers at once (across
processes, while deliveries arrive), and retried after a failure."""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Connection, text
from starlette.testclient import TestClient

from domain.application import SyncService
from infrastructure.audit.checkpoints import (
    Checkpoint,
    Checkpointer,
    PeriodicCheckpoint,
    checkpoint_hash,
    head,
)
from infrastructure.audit.verify import verify
from infrastructure.persistence.database import Database
from infrastructure.persistence.ledger import GENESIS
from infrastructure.pipeline import Pipeline
from infrastructure.settings import Settings
from tests.intake import deliver
from tests.partner import Partner, post
from web.app import create_app


def last_notification(database: Database) -> int:
    with database.engine().connect() as conn:
        return int(
            conn.execute(text("SELECT max(notification_id) FROM event_audit")).scalar()
            or 0
        )


def stored_checkpoints(database: Database) -> list[Any]:
    with database.engine().connect() as conn:
        return list(conn.execute(text("SELECT * FROM checkpoints ORDER BY seq")))


def assert_one_unbroken_chain(database: Database) -> None:
    """Seqs 1..n, each range right after the previous one, every ledger row
    covered once, each hash chained from the previous one, and verify agrees."""
    rows = stored_checkpoints(database)
    with database.engine().connect() as conn:
        ledger = [
            (int(n), bytes.fromhex(h))
            for n, h in conn.execute(
                text("SELECT notification_id, hash FROM event_audit ORDER BY 1")
            )
        ]
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    previous, position = GENESIS, 0
    for row in rows:
        covered = [entry for entry in ledger if entry[0] <= row.last_notification_id]
        covered = covered[position:]
        assert covered and covered[0][0] == row.first_notification_id
        assert row.events == len(covered)
        assert row.hash == checkpoint_hash(previous, covered).hex()
        previous, position = bytes.fromhex(row.hash), position + len(covered)
    assert position == len(ledger)
    report = verify(database.engine())
    assert report.findings == [] and report.uncovered_events == 0


def test_serve_checkpoints_the_ledger_every_interval(
    settings: Settings, partner: Partner
) -> None:
    database = Database(settings.database_url)
    with TestClient(create_app(settings, checkpoint_interval_seconds=0.05)) as client:
        for number in range(5):
            assert post(client, partner.order_created(f"ord_{number}"))[0] == 200
            time.sleep(0.06)
        deadline = time.monotonic() + 10
        while True:
            checkpoint = head(database.engine())
            if checkpoint and checkpoint.last_notification_id == last_notification(
                database
            ):
                break
            assert time.monotonic() < deadline, "serve did not checkpoint the ledger"
            time.sleep(0.05)
    assert len(stored_checkpoints(database)) >= 2
    assert_one_unbroken_chain(database)
    database.close()


def test_a_failing_checkpoint_is_logged_and_retried_at_the_next_interval(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(database_url)
    periodic = PeriodicCheckpoint(database.engine(), interval_seconds=0.02)
    calls: list[int] = []
    real = periodic.checkpointer.catch_up

    def flaky(**kwargs: Any) -> Checkpoint | None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store unavailable")
        return real(**kwargs)

    periodic.checkpointer.catch_up = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="idemsync.checkpoints"):
        periodic.start()
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        periodic.stop()
    assert len(calls) >= 3
    assert "writing audit checkpoints failed; next try later" in caplog.text
    database.close()


def checkpoint_while(url: str, done: Any, barrier: Any) -> tuple[int, int]:
    """In a worker process: checkpoint (3 events at most each) until ``done``,
    then catch up; (checkpoints written by ``step``, races lost)."""
    database = Database(url, pool_size=2)
    checkpointer = Checkpointer(database.engine())
    written = 0
    barrier.wait(timeout=60)
    while not done.is_set():
        if checkpointer.step(max_events=3) is not None:
            written += 1
        time.sleep(0.002)
    checkpointer.catch_up(max_events=3)
    database.close()
    return written, checkpointer.conflicts


def test_two_processes_checkpointing_while_deliveries_arrive_never_fork_the_chain(
    settings: Settings, partner: Partner
) -> None:
    context = multiprocessing.get_context("spawn")
    database = Database(settings.database_url)
    service = SyncService(env=database.eventsourcing_env())
    intake = Pipeline(settings, service)
    with (
        context.Manager() as manager,
        ProcessPoolExecutor(2, mp_context=context) as pool,
    ):
        done, barrier = manager.Event(), manager.Barrier(3)
        workers = [
            pool.submit(checkpoint_while, settings.database_url, done, barrier)
            for _ in range(2)
        ]
        barrier.wait(timeout=60)
        for number in range(40):
            request = partner.order_created(f"ord_{number % 7}_{number}")
            answer = intake.receive("acme", request.headers, request.body)
            assert answer.to_json()["outcome"] == "applied"
        done.set()
        results = [worker.result(timeout=120) for worker in workers]
    service.close()
    assert sum(written for written, _ in results) >= 1
    assert head(database.engine()) is not None
    assert_one_unbroken_chain(database)
    database.close()


class Interrupted(Checkpointer):
    """A checkpointer that lets ``other`` write the same checkpoint between
    its reads and its insert."""

    def __init__(self, database: Database, other: Checkpointer) -> None:
        super().__init__(database.engine())
        self.other = other

    def _insert(self, conn: Connection, checkpoint: Checkpoint) -> None:
        assert self.other.step() is not None
        super()._insert(conn, checkpoint)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_checkpointer_that_loses_the_race_rolls_back_and_leaves_the_chain_alone(
    database_url: str, settings: Settings, partner: Partner
) -> None:
    """On PostgreSQL two checkpointers can read the same head; the primary
    key on seq lets one insert win. (On SQLite ``BEGIN IMMEDIATE`` serialises
    them: there is no race to lose.)"""
    deliver(settings, partner.order_created("ord_1"))
    database = Database(database_url)
    winner = Checkpointer(database.engine())
    loser = Interrupted(database, winner)
    assert loser.step() is None and loser.conflicts == 1
    assert [row.seq for row in stored_checkpoints(database)] == [1]
    assert loser.catch_up() == head(database.engine())
    assert_one_unbroken_chain(database)
    database.close()
