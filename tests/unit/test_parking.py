"""Parking: events for objects that do not exist yet wait for their creation
and are applied in position order (specification §4); duplicates answer
with the first answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from domain.application import SyncService
from domain.commands import (
    CancelOrder,
    Command,
    CreateOrder,
    MarkDelivered,
    MarkPaid,
    MarkShipped,
    RefundOrder,
)
from domain.delivery import Answer, Delivery, Outcome
from domain.errors import AlreadyParked
from infrastructure.persistence.memory import MemoryDeliveryRecorder

SOURCE = "acme"
ORDER_ID = "ord-1"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def service() -> SyncService:
    return SyncService(
        env={"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}
    )


def recorder(service: SyncService) -> MemoryDeliveryRecorder:
    return cast(MemoryDeliveryRecorder, service.recorder)


def deliver(service: SyncService, key: str, command: Command) -> Answer:
    body = json.dumps({"key": key, "command": command.to_dict()}).encode()
    delivery = Delivery(SOURCE, key, T0, body, {})
    return service.receive(delivery, [command])


def version_of(service: SyncService) -> int:
    order = service.find("order", ORDER_ID)
    assert order is not None
    version: int = order.version
    return version


def at(step: int) -> dict[str, Any]:
    return {
        "order_id": ORDER_ID,
        "occurred_at": T0 + timedelta(seconds=step),
        "sequence": step,
    }


def created(step: int) -> CreateOrder:
    return CreateOrder(
        customer_id="cus-1", currency="EUR", total_cents=5000, **at(step)
    )


def test_an_event_for_an_unknown_order_is_parked_then_applied_on_creation(
    service: SyncService,
) -> None:
    parked = deliver(service, "k-paid", MarkPaid(amount_cents=5000, **at(2)))
    assert parked.outcome is Outcome.PARKED
    assert parked.reason
    assert service.state_of("order", ORDER_ID) == {
        "status": None,
        "values": {},
        "positions": {},
        "parked": ["k-paid"],
    }

    applied = deliver(service, "k-created", created(1))
    assert applied.outcome is Outcome.APPLIED

    state = service.state_of("order", ORDER_ID)
    assert state is not None
    assert state["status"] == "paid"
    assert state["values"]["paid_cents"] == 5000
    assert state["parked"] == []
    resolution = recorder(service).resolutions[(SOURCE, "k-paid")]
    assert resolution.outcome is Outcome.APPLIED
    assert resolution.reason is None
    # The parked delivery's first answer stays what the partner was told.
    assert recorder(service).answers[(SOURCE, "k-paid")].answer["outcome"] == "parked"


def test_the_parked_answer_names_the_aggregate(service: SyncService) -> None:
    parked = deliver(service, "k-paid", MarkPaid(amount_cents=1, **at(2))).to_json()
    assert parked["outcome"] == "parked"
    assert parked["aggregate"]["type"] == "order"
    assert parked["aggregate"]["id"] == ORDER_ID
    assert "reason" in parked


@pytest.mark.parametrize(
    "arrival",
    [
        ["paid", "shipped", "delivered"],
        ["delivered", "shipped", "paid"],
        ["shipped", "delivered", "paid"],
        ["delivered", "paid", "shipped"],
    ],
)
def test_parked_events_are_applied_in_position_order_whatever_their_arrival_order(
    service: SyncService, arrival: list[str]
) -> None:
    commands: dict[str, Command] = {
        "paid": MarkPaid(amount_cents=5000, **at(2)),
        "shipped": MarkShipped(carrier="UPS", tracking_number="1Z", **at(3)),
        "delivered": MarkDelivered(**at(4)),
    }
    for name in arrival:
        assert deliver(service, f"k-{name}", commands[name]).outcome is Outcome.PARKED
    assert deliver(service, "k-created", created(1)).outcome is Outcome.APPLIED

    state = service.state_of("order", ORDER_ID)
    assert state is not None
    assert state["status"] == "delivered"
    assert state["values"]["paid_cents"] == 5000
    assert state["values"]["carrier"] == "UPS"
    assert state["parked"] == []
    for name in arrival:
        resolution = recorder(service).resolutions[(SOURCE, f"k-{name}")]
        assert resolution.outcome is Outcome.APPLIED, resolution

    # The events were recorded in position order, whatever the arrival order.
    order = service.find("order", ORDER_ID)
    assert order is not None
    recorded = [
        type(event).__name__
        for event in service.repository.event_store.get(order.id)
        if type(event).__name__ in {"Created", "Paid", "Shipped", "Delivered"}
    ]
    assert recorded == ["Created", "Paid", "Shipped", "Delivered"]


def test_a_parked_event_that_is_illegal_when_released_resolves_as_rejected(
    service: SyncService,
) -> None:
    deliver(
        service, "k-shipped", MarkShipped(carrier="UPS", tracking_number="1Z", **at(4))
    )
    deliver(service, "k-cancelled", CancelOrder(reason="fraud", **at(3)))
    assert deliver(service, "k-created", created(1)).outcome is Outcome.APPLIED

    resolutions = recorder(service).resolutions
    assert resolutions[(SOURCE, "k-cancelled")].outcome is Outcome.APPLIED
    rejected = resolutions[(SOURCE, "k-shipped")]
    assert rejected.outcome is Outcome.REJECTED
    assert rejected.reason
    assert "cancelled" in rejected.reason
    state = service.state_of("order", ORDER_ID)
    assert state is not None
    assert state["status"] == "cancelled"
    assert "carrier" not in state["values"]
    assert state["parked"] == []


def test_a_parked_event_older_than_what_creation_set_resolves_as_stale(
    service: SyncService,
) -> None:
    deliver(service, "k-delivered", MarkDelivered(**at(1)))
    assert deliver(service, "k-created", created(2)).outcome is Outcome.APPLIED
    stale = recorder(service).resolutions[(SOURCE, "k-delivered")]
    assert stale.outcome is Outcome.STALE
    assert stale.reason


def test_a_parked_delivery_repeated_is_a_duplicate_and_parked_once(
    service: SyncService,
) -> None:
    command = RefundOrder(amount_cents=10, **at(5))
    first = deliver(service, "k-refund", command)
    again = deliver(service, "k-refund", command)
    assert again.outcome is Outcome.DUPLICATE
    assert again.first == first.to_json()
    state = service.state_of("order", ORDER_ID)
    assert state is not None
    assert state["parked"] == ["k-refund"]


def test_a_duplicate_key_answers_duplicate_with_the_first_answer(
    service: SyncService,
) -> None:
    first = deliver(service, "k-created", created(1))
    assert first.outcome is Outcome.APPLIED
    version = version_of(service)

    # Same key, even with another command: the delivery log answers first.
    again = deliver(service, "k-created", created(7))
    assert again.outcome is Outcome.DUPLICATE
    assert again.first == first.to_json()
    assert (
        again.to_json()["first"]
        == recorder(service).answers[(SOURCE, "k-created")].answer
    )
    assert version_of(service) == version


def test_a_delivery_of_several_commands_for_a_missing_order_parks_them_all(
    service: SyncService,
) -> None:
    """A Stripe charge listing its refunds, a Shopify order with its refunds:
    one delivery, several commands for one order that does not exist yet.
    Each waits; the creation applies them all and resolves the delivery
    once."""
    paid = MarkPaid(amount_cents=900, **at(2))
    shipped = MarkShipped(carrier="DHL", tracking_number="T-1", **at(3))
    body = json.dumps({"commands": [paid.to_dict(), shipped.to_dict()]}).encode()
    answer = service.receive(Delivery(SOURCE, "k-both", T0, body, {}), [paid, shipped])
    assert answer.outcome is Outcome.PARKED
    waiting = service.find("order", ORDER_ID)
    assert waiting is not None and len(waiting.parked) == 2

    created = CreateOrder(customer_id="c", currency="EUR", total_cents=900, **at(1))
    assert deliver(service, "k-create", created).outcome is Outcome.APPLIED

    order = service.find("order", ORDER_ID)
    assert order is not None
    assert (order.status, order.values["paid_cents"]) == ("shipped", 900)
    assert order.values["carrier"] == "DHL"
    assert order.parked == []
    resolved = recorder(service).resolutions
    assert list(resolved) == [(SOURCE, "k-both")]
    assert resolved[(SOURCE, "k-both")].outcome is Outcome.APPLIED


def test_the_same_command_of_one_delivery_parks_once_another_one_too(
    service: SyncService,
) -> None:
    paid = MarkPaid(amount_cents=900, **at(2))
    deliver(service, "k-paid", paid)
    order = service.find("order", ORDER_ID)
    assert order is not None
    with pytest.raises(AlreadyParked):
        order.park(paid, SOURCE, "k-paid")
    order.park(MarkPaid(amount_cents=901, **at(2)), SOURCE, "k-paid")
    assert len(order.parked) == 2
