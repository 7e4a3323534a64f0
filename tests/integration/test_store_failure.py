"""No 2xx before commit: when the store fails in the middle of a request the
partner gets 503 with ``Retry-After``, nothing is stored, and its retry after
recovery is a first delivery (specification §4, invariant 3)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
from httpx import Response
from starlette.testclient import TestClient

from tests.partner import Partner, send
from tests.store import Store


@contextmanager
def sqlite_writer_holding_the_lock(url: str) -> Iterator[None]:
    """Another process's long write transaction: writers time out."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


@contextmanager
def postgres_lock(url: str) -> Iterator[psycopg.Connection]:
    """A transaction that holds the delivery log: every reader waits."""
    conn = psycopg.connect(url)
    conn.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


def kill_waiting_backends(url: str, lock_holder: psycopg.Connection) -> int:
    """Terminate the server's connections that wait for a lock: the store
    fails under the request, as when PostgreSQL goes down."""
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        for _ in range(100):
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                "AND wait_event_type = 'Lock' AND pid <> %s",
                (dbname, lock_holder.info.backend_pid),
            ).fetchall()
            if rows:
                for (pid,) in rows:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                return len(rows)
            time.sleep(0.02)
    raise AssertionError("the request never waited on the store")


def test_a_store_that_fails_mid_request_gives_503_and_the_retry_is_a_first_delivery(
    client: TestClient, partner: Partner, store: Store, database_url: str
) -> None:
    request = partner.order_created("ord_outage", total_cents=100)
    if database_url.startswith("sqlite"):
        with sqlite_writer_holding_the_lock(database_url):
            response = send(client, request)
    else:
        with postgres_lock(database_url) as holder, ThreadPoolExecutor(1) as pool:
            pending: Future[Response] = pool.submit(send, client, request)
            assert kill_waiting_backends(database_url, holder) >= 1
            response = pending.result(timeout=30)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"] == "store_unavailable"
    assert store.delivery("acme", request.key) is None
    assert store.count("idemsync_events") == 0

    retry = partner.sign(request.body, key=request.key)
    response = send(client, retry)
    assert (response.status_code, response.json()["outcome"]) == (200, "applied")
    assert store.count("deliveries") == 1


def test_a_store_that_stays_locked_times_out_quickly_with_503(
    client: TestClient, partner: Partner, database_url: str
) -> None:
    request = partner.event("order.paid", order_id="ord_slow", amount_cents=1)
    started = time.monotonic()
    if database_url.startswith("sqlite"):
        with sqlite_writer_holding_the_lock(database_url):
            response = send(client, request)
    else:
        with postgres_lock(database_url):
            response = send(client, request)
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert time.monotonic() - started < 15
    assert threading.active_count() < 50
