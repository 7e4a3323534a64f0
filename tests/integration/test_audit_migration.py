"""Events stored before the audit ledger existed (revision 0002, written by
eventsourcing's own persistence with no ledger) are entered by migration 0003
with the provenance their stored state names; ``idemsync audit verify`` then
passes, and new deliveries chain on from them. On both backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from alembic import command
from eventsourcing.application import Application
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from eventsourcing.utils import get_topic
from sqlalchemy import text

from domain.commands import CreateOrder, MarkPaid
from domain.customer import Customer
from domain.order import Order
from domain.receipt import Receipt
from infrastructure.audit.checkpoints import Checkpointer
from infrastructure.audit.verify import verify
from infrastructure.persistence.database import Database
from infrastructure.settings import Settings
from tests.conftest import PG_SERVER, pg_execute, postgres_or_skip
from tests.intake import deliver
from tests.partner import Partner, make_settings

START = datetime(2026, 11, 1, tzinfo=UTC)


class LibraryApp(Application):
    """eventsourcing's Application, under the name idemsync runs as."""

    name = "idemsync"


class LibrarySQLiteRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder on the idemsync_events table."""

    def __init__(
        self, datastore: SQLiteDatastore, events_table_name: str = "idemsync_events"
    ) -> None:
        super().__init__(datastore, events_table_name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend, not migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'before-ledger.db'}"
        return
    postgres_or_skip()
    name = f"idemsync_m_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    pg_execute(f"CREATE DATABASE {name}")
    yield f"{PG_SERVER}/{name}"
    pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def library_env(database: Database) -> dict[str, str]:
    """eventsourcing's own persistence (no ledger) on the same tables."""
    if not database.is_postgres:
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(database.sqlite_path),
            "APPLICATION_RECORDER_TOPIC": get_topic(LibrarySQLiteRecorder),
            "CREATE_TABLE": "n",
        }
    parts = urlsplit(database.url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "CREATE_TABLE": "n",
    }


def write_before_the_ledger(database: Database) -> None:
    """Two orders (one paid) and a customer, with their receipts, saved the
    way revision 0002's code saved them (no ledger)."""
    app = LibraryApp(env=library_env(database))
    try:
        first = Order("ord_1", "acme", "k1")  # type: ignore[call-arg]
        first.execute(
            CreateOrder(
                order_id="ord_1",
                customer_id="cus_1",
                currency="EUR",
                total_cents=500,
                occurred_at=START,
            ),
            "acme",
            "k1",
        )
        first.execute(
            MarkPaid(
                order_id="ord_1", amount_cents=500, occurred_at=START + timedelta(1)
            ),
            "acme",
            "k2",
        )
        second = Order("ord_2", "acme", "k3")  # type: ignore[call-arg]
        second.execute(
            CreateOrder(
                order_id="ord_2",
                customer_id="cus_1",
                currency="EUR",
                total_cents=900,
                occurred_at=START + timedelta(2),
            ),
            "acme",
            "k3",
        )
        receipts = [
            Receipt(
                "acme", key, "applied", None, {"outcome": "applied"}, START.isoformat()
            )
            for key in ("k1", "k2", "k3")
        ]
        app.save(first, second, *receipts)
        customer = Customer("cus_1", "acme", "k4")  # type: ignore[call-arg]
        app.save(customer)
    finally:
        app.close()


def test_events_stored_before_the_ledger_are_entered_by_the_migration_and_verify(
    unmigrated_url: str, secret: str, partner: Partner
) -> None:
    database = Database(unmigrated_url)
    command.upgrade(database.alembic_config(), "0002")
    write_before_the_ledger(database)
    with database.engine().connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM idemsync_events")).scalar()
    # ord_1 tracked, created, paid; ord_2 tracked, created; 3 receipts; cus_1
    assert stored == 9

    database.upgrade()
    report = verify(database.engine())
    assert report.findings == [] and not report.failed
    assert report.events == report.ledger_rows == stored
    assert report.head is None and report.uncovered_events == stored

    with database.engine().connect() as conn:
        paid = conn.execute(
            text(
                "SELECT aggregate_type, aggregate_id, source, idempotency_key "
                "FROM event_audit WHERE originator_version = 3 "
                "AND aggregate_id = 'ord_1'"
            )
        ).one()
    assert tuple(paid) == ("order", "ord_1", "acme", "k2")

    settings: Settings = make_settings(unmigrated_url, secret)
    deliver(
        settings,
        partner.event(
            "order.shipped", order_id="ord_1", carrier="dhl", tracking_number="J1"
        ),
    )
    Checkpointer(database.engine()).catch_up()
    after = verify(database.engine())
    assert after.findings == [] and after.events == stored + 2
    assert after.head is not None and after.uncovered_events == 0
    database.close()
