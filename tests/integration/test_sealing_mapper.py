"""The sealing mapper (infrastructure/privacy/mapper.py) on both backends:
a customer's personal fields are stored sealed in its events and snapshots
and read back in clear (the keys of a batch of events in one statement); once
its key is erased they read as ``ERASED``
while everything else (status, positions) reads as before; an order's
events are left alone; a sealed value copied into another customer's event
does not open there."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.event import listen, remove

from domain.application import SyncService
from domain.commands import CreateOrder, UpsertCustomer
from domain.customer import Customer
from domain.namespaces import object_uuid
from domain.order import Order
from domain.personal import ERASED
from domain.preload import to_events
from infrastructure.bootstrap import sync_service
from infrastructure.persistence.database import Database
from infrastructure.persistence.ledger import stored_id
from infrastructure.privacy.keys import MasterKey, is_sealed
from infrastructure.privacy.mapper import SealingMapper
from infrastructure.privacy.store import SUBJECT_KEYS, SubjectKeys, customer_subject
from infrastructure.settings import Settings
from tests.partner import make_settings

ADA = {
    "email": "ada@example.org",
    "name": "Ada Lovelace",
    "phone": "+44 20 7946 0000",
    "address": {"line1": "12 St James's Square", "city": "London"},
}


@pytest.fixture
def settings(database_url: str) -> Settings:
    base = make_settings(database_url, "whsec_" + "A" * 32)
    return dataclasses.replace(base, master_key=MasterKey(os.urandom(32)))


@pytest.fixture
def service(settings: Settings) -> Iterator[SyncService]:
    database = Database.of(settings)
    service = sync_service(settings, database)
    yield service
    service.close()
    database.close()


def upsert(service: SyncService, customer_id: str, at: int, **fields: Any) -> Customer:
    customer = service.load(Customer, customer_id, namespace="acme")
    command = UpsertCustomer(
        customer_id=customer_id,
        occurred_at=datetime.fromtimestamp(at, UTC),
        fields=fields,
    )
    customer.execute(command, "acme", f"key-{customer_id}-{at}")
    service.save(customer)
    assert isinstance(customer, Customer)
    return customer


def stored_states(engine: Engine, customer_id: str) -> list[dict[str, Any]]:
    aggregate_id = object_uuid("customer", "acme", customer_id)
    as_stored = stored_id(engine.dialect.name, aggregate_id)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT state FROM idemsync_events WHERE originator_id = :id "
                "ORDER BY originator_version"
            ),
            {"id": as_stored},
        ).scalars()
        return [json.loads(bytes(state)) for state in rows]


def test_personal_fields_are_sealed_in_the_stored_event_and_read_back_in_clear(
    service: SyncService, engine: Engine
) -> None:
    upsert(service, "cus_1", 1_700_000_000, **ADA)
    (_, upserted) = stored_states(engine, "cus_1")
    changes = upserted["changes"]
    assert all(is_sealed(changes[field]) for field in ADA)
    assert changes["status"] == "active", "what is not personal stays readable"
    assert "Ada" not in json.dumps(upserted)
    found = service.find("customer", "cus_1", "acme")
    assert found is not None and found.values == ADA


def test_snapshots_are_sealed_too_and_load_back(
    service: SyncService, engine: Engine
) -> None:
    upsert(service, "cus_1", 1_700_000_000, **ADA)
    aggregate_id = object_uuid("customer", "acme", "cus_1")
    service.take_snapshot(aggregate_id)
    with engine.connect() as conn:
        (state,) = conn.execute(text("SELECT state FROM idemsync_snapshots")).scalars()
    snapshot = json.loads(bytes(state))
    assert all(is_sealed(snapshot["state"]["values"][field]) for field in ADA)
    assert service.snapshots is not None
    restored = service.repository.get(aggregate_id)
    assert restored.values == ADA


def test_once_the_key_is_erased_the_fields_read_as_erased_and_the_rest_as_before(
    service: SyncService, settings: Settings, engine: Engine
) -> None:
    upsert(service, "cus_1", 1_700_000_000, **ADA)
    upsert(service, "cus_2", 1_700_000_000, email="bob@example.org")
    before = service.find("customer", "cus_1", "acme")
    assert before is not None
    assert settings.master_key is not None
    SubjectKeys(engine, settings.master_key).erase(customer_subject("acme", "cus_1"))
    after = service.find("customer", "cus_1", "acme")
    assert after is not None
    assert after.values == dict.fromkeys(ADA, ERASED)
    assert (after.status, after.positions, after.version) == (
        before.status,
        before.positions,
        before.version,
    )
    other = service.find("customer", "cus_2", "acme")
    assert other is not None and other.values == {"email": "bob@example.org"}


def test_an_orders_events_are_not_sealed_and_make_no_key(
    service: SyncService, engine: Engine
) -> None:
    order = service.load(Order, "ord_1", namespace="acme")
    order.execute(
        CreateOrder(
            order_id="ord_1",
            customer_id="cus_1",
            currency="EUR",
            total_cents=4200,
            occurred_at=datetime.fromtimestamp(1_700_000_000, UTC),
        ),
        "acme",
        "key-ord",
    )
    service.save(order)
    with engine.connect() as conn:
        assert conn.execute(select(SUBJECT_KEYS)).all() == []
        states = conn.execute(text("SELECT state FROM idemsync_events")).scalars()
        assert not any(b"enc:v1:" in bytes(state) for state in states)


def test_a_sealed_value_copied_into_another_customers_event_does_not_open(
    service: SyncService, engine: Engine
) -> None:
    upsert(service, "cus_1", 1_700_000_000, **ADA)
    upsert(service, "cus_2", 1_700_000_000, email="bob@example.org")
    ada_email = stored_states(engine, "cus_1")[1]["changes"]["email"]
    as_stored = stored_id(engine.dialect.name, object_uuid("customer", "acme", "cus_2"))
    with engine.begin() as conn:
        (state,) = conn.execute(
            text(
                "SELECT state FROM idemsync_events "
                "WHERE originator_id = :id AND originator_version = 2"
            ),
            {"id": as_stored},
        ).scalars()
        forged = json.loads(bytes(state))
        forged["changes"]["email"] = ada_email
        conn.execute(
            text(
                "UPDATE idemsync_events SET state = :state "
                "WHERE originator_id = :id AND originator_version = 2"
            ),
            {"state": json.dumps(forged).encode(), "id": as_stored},
        )
    bob = service.find("customer", "cus_2", "acme")
    assert bob is not None and bob.values == {"email": ERASED}


def test_the_keys_of_a_batch_of_events_are_read_in_one_statement(
    service: SyncService,
) -> None:
    emails = [f"person{n}@example.org" for n in range(5)]
    for n, email in enumerate(emails):
        upsert(service, f"cus_{n}", 1_700_000_000, email=email)
    stored = service.recorder.select_notifications(start=1, limit=100)
    mapper = service.mapper
    assert isinstance(mapper, SealingMapper)
    reads: list[str] = []

    def count(*args: Any) -> None:
        statement = args[2]
        if "subject_keys" in statement:
            reads.append(statement)

    listen(mapper.keys.engine, "before_cursor_execute", count)
    try:
        events = to_events(mapper, stored)
    finally:
        remove(mapper.keys.engine, "before_cursor_execute", count)
    assert len(reads) == 1, reads
    opened = [
        e.changes["email"] for e in events if "email" in getattr(e, "changes", {})
    ]
    assert opened == emails
