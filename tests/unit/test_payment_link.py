"""A partner's payment that names an order (``domain.payment``): order
events that know only their payment wait on it until a completed checkout
links it to its order, then are decided on that order, each with its own
delivery, in position order; once linked, they go straight to the order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from domain.application import SyncService
from domain.commands import Command, CreateOrder, LinkPayment, MarkPaid, RecordRefund
from domain.delivery import Answer, Delivery, Outcome
from domain.order import Order
from infrastructure.persistence.memory import MemoryDeliveryRecorder

SOURCE = "stripe"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
PAYMENT = "pi_1"


@pytest.fixture
def service() -> SyncService:
    return SyncService(
        env={"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}
    )


def deliver(service: SyncService, key: str, *commands: Command) -> Answer:
    body = json.dumps([c.to_dict() for c in commands]).encode()
    return service.receive(Delivery(SOURCE, key, T0, body, {}), list(commands))


def refund(refund_id: str, cents: int, second: int) -> RecordRefund:
    return RecordRefund(
        order_id="",
        via_payment=PAYMENT,
        refund_id=refund_id,
        amount_cents=cents,
        occurred_at=T0 + timedelta(seconds=second),
    )


def checkout(order_id: str = "ord_1") -> tuple[Command, ...]:
    return (
        CreateOrder(
            order_id=order_id,
            customer_id=None,
            currency="EUR",
            total_cents=900,
            occurred_at=T0,
        ),
        MarkPaid(order_id=order_id, amount_cents=900, occurred_at=T0),
        LinkPayment(payment_id=PAYMENT, order_id=order_id, occurred_at=T0),
    )


def test_events_that_name_only_their_payment_wait_for_the_link_then_apply(
    service: SyncService,
) -> None:
    first = deliver(service, "k-re1", refund("re_1", 300, 5))
    second = deliver(service, "k-re2", refund("re_2", 200, 6))
    assert (first.outcome, second.outcome) == (Outcome.PARKED, Outcome.PARKED)
    assert "not linked" in (first.reason or "")
    assert service.find("order", "ord_1") is None

    assert deliver(service, "k-checkout", *checkout()).outcome is Outcome.APPLIED

    order = cast(Order, service.find("order", "ord_1"))
    assert order.money.refunded_cents == 500
    payment = service.find("payment", PAYMENT)
    assert payment is not None and payment.parked == []
    resolutions = cast(MemoryDeliveryRecorder, service.recorder).resolutions
    assert {k: r.outcome for (_, k), r in resolutions.items()} == {
        "k-re1": Outcome.APPLIED,
        "k-re2": Outcome.APPLIED,
    }


def test_once_linked_an_event_that_names_only_its_payment_goes_to_the_order(
    service: SyncService,
) -> None:
    deliver(service, "k-checkout", *checkout())
    answer = deliver(service, "k-re1", refund("re_1", 300, 5))
    assert answer.outcome is Outcome.APPLIED
    order = cast(Order, service.find("order", "ord_1"))
    assert order.money.refunded_cents == 300
    again = deliver(service, "k-re1-again", refund("re_1", 300, 5))
    assert again.outcome is Outcome.STALE
