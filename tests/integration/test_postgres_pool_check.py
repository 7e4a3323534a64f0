"""The PostgreSQL pool lends a live connection without pinging it each time
(``ping_if_readable``), yet never lends one the server has closed."""

from __future__ import annotations

import select
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.pq import Trace

from domain.application import SyncService
from domain.delivery import Delivery, Outcome
from infrastructure.mappings.standard import map_standard
from infrastructure.persistence.database import Database
from infrastructure.persistence.postgres import ping_if_readable
from tests.partner import Partner

pytestmark = pytest.mark.postgres


def backend_pids(url: str) -> set[int]:
    """Every session of ``url``'s database."""
    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres") as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (dbname,)
        ).fetchall()
    return {pid for (pid,) in rows}


def terminate(url: str, pids: set[int]) -> None:
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))


def receive(service: SyncService, key: str, order_id: str) -> Outcome:
    body = Partner("unused").order_created(order_id).body
    delivery = Delivery("shop", key, datetime.now(UTC), body)
    return service.receive(delivery, map_standard(body, {})).outcome


def traced_check(conn: psycopg.Connection, path: Path) -> str:
    """What ``ping_if_readable`` said to the server (libpq's own trace)."""
    with path.open("w") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            ping_if_readable(conn)
        finally:
            conn.pgconn.untrace()
    return path.read_text()


def test_an_idle_live_connection_is_lent_without_a_round_trip(
    postgres_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT 1")
        assert traced_check(conn, tmp_path / "trace") == ""
        conn.execute("LISTEN idemsync_test")
        with psycopg.connect(postgres_url, autocommit=True) as other:
            other.execute("NOTIFY idemsync_test")  # now there is something to read
        deadline = time.monotonic() + 5
        while not select.select([conn.fileno()], [], [], 0.1)[0]:
            assert time.monotonic() < deadline, "the notification never came"
        assert "Query" in traced_check(conn, tmp_path / "trace")


def test_a_connection_the_server_closed_is_pinged_and_refused(
    postgres_url: str,
) -> None:
    conn = psycopg.connect(postgres_url, autocommit=True)
    try:
        terminate(postgres_url, {conn.info.backend_pid})
        with pytest.raises(psycopg.OperationalError):
            ping_if_readable(conn)
    finally:
        conn.close()


def test_deliveries_go_on_after_the_server_drops_every_pooled_connection(
    postgres_url: str,
) -> None:
    service = SyncService(env=Database(postgres_url, pool_size=2).eventsourcing_env())
    try:
        assert receive(service, "k1", "ord_1") is Outcome.APPLIED
        pids = backend_pids(postgres_url)
        assert pids  # the service's pooled sessions
        terminate(postgres_url, pids)
        assert receive(service, "k2", "ord_2") is Outcome.APPLIED
        assert receive(service, "k1", "ord_1") is Outcome.DUPLICATE
    finally:
        service.close()
