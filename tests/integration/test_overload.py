"""Overload (issue 7, item 4): when the store is slow, deliveries are
answered 503 with ``Retry-After`` quickly instead of queueing without bound,
nothing of them is stored, and the server recovers by itself."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import msgspec
import psycopg
import pytest
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from tests.partner import Partner, post, send
from tests.store import Store
from web.app import create_app


@contextmanager
def store_stalled(url: str) -> Iterator[None]:
    """Another session holds the write locks the commit needs, as a long
    migration or a stuck transaction would."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    with psycopg.connect(url) as pg:
        pg.execute("LOCK TABLE idemsync_events IN EXCLUSIVE MODE")
        pg.execute("LOCK TABLE deliveries IN EXCLUSIVE MODE")
        yield
        pg.rollback()


@pytest.fixture
def impatient(settings: Settings) -> Iterator[TestClient]:
    quick = dataclasses.replace(
        settings,
        server=msgspec.structs.replace(
            settings.server, commit_wait_seconds=0.5, max_in_flight=4
        ),
    )
    with TestClient(create_app(quick), raise_server_exceptions=False) as client:
        yield client


def test_a_stalled_store_is_answered_503_quickly_and_nothing_is_stored(
    impatient: TestClient, partner: Partner, store: Store, settings: Settings
) -> None:
    requests = [partner.order_created(f"ord_{n}") for n in range(4)]
    with store_stalled(settings.database_url), ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        answers = list(pool.map(lambda r: send(impatient, r), requests))
        took = time.monotonic() - started
    assert [a.status_code for a in answers] == [503] * 4
    assert all(a.headers["retry-after"] == "3" for a in answers)
    assert {a.json()["error"] for a in answers} <= {"overloaded", "store_unavailable"}
    assert took < settings.database.lock_timeout_seconds + 3
    assert store.keys() == set()


def test_beyond_the_requests_in_progress_limit_the_answer_is_503_at_once(
    impatient: TestClient, partner: Partner, settings: Settings
) -> None:
    with store_stalled(settings.database_url), ThreadPoolExecutor(8) as pool:
        held = [
            pool.submit(send, impatient, partner.order_created(f"ord_{n}"))
            for n in range(4)
        ]
        time.sleep(0.2)
        started = time.monotonic()
        extra = send(impatient, partner.order_created("ord_extra"))
        took = time.monotonic() - started
        assert extra.status_code == 503
        assert extra.json()["message"] == "too many requests in progress; retry"
        assert took < 0.5
        assert {f.result(timeout=30).status_code for f in held} == {503}


def test_after_the_stall_the_server_recovers_by_itself(
    impatient: TestClient, partner: Partner, store: Store, settings: Settings
) -> None:
    request = partner.order_created("ord_1")
    with store_stalled(settings.database_url):
        assert send(impatient, request).status_code == 503
    status, body, _ = post(impatient, request)
    assert (status, body["outcome"]) == (200, "applied")
    assert post(impatient, request)[1]["outcome"] == "duplicate"
    assert store.keys() == {("acme", request.key)}
