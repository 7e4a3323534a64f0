"""Every field a command can state is declared personal or not in
``domain.personal`` (the one place): a new command, or a new field of one,
fails here until it is classified."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain import commands as c
from domain.personal import PERSONAL, UnclassifiedField, is_personal

AT = datetime(2026, 12, 1, tzinfo=UTC)
SAMPLES: list[c.Command] = [
    c.CreateOrder(
        occurred_at=AT,
        order_id="o",
        customer_id="cus",
        currency="EUR",
        total_cents=1,
    ),
    c.MarkPaid(occurred_at=AT, order_id="o", amount_cents=1),
    c.MarkShipped(occurred_at=AT, order_id="o", carrier="DHL", tracking_number="T"),
    c.MarkDelivered(occurred_at=AT, order_id="o"),
    c.CancelOrder(occurred_at=AT, order_id="o", reason="r"),
    c.RefundOrder(occurred_at=AT, order_id="o", amount_cents=1),
    c.RecordRefund(occurred_at=AT, order_id="o", refund_id="re_1", amount_cents=1),
    c.RecordDispute(
        occurred_at=AT, order_id="o", dispute_id="dp_1", amount_cents=1, lost=True
    ),
    c.UpsertCustomer(
        occurred_at=AT,
        customer_id="cus",
        fields=dict.fromkeys(c.CUSTOMER_FIELDS, "x"),
    ),
    c.DeleteCustomer(occurred_at=AT, customer_id="cus"),
    c.LinkPayment(occurred_at=AT, payment_id="pi", order_id="o"),
]


def concrete(cls: type[c.Command]) -> list[type[c.Command]]:
    found = []
    for sub in cls.__subclasses__():
        if "type" in vars(sub):
            found.append(sub)
        found += concrete(sub)
    return found


def test_there_is_a_sample_of_every_kind_of_command() -> None:
    assert {type(sample) for sample in SAMPLES} == set(concrete(c.Command))


@pytest.mark.parametrize("command", SAMPLES, ids=lambda command: command.type)
def test_every_field_a_command_states_is_classified(command: c.Command) -> None:
    for field in command.values():
        is_personal(command.aggregate, field)  # raises when not classified


def test_a_customers_name_email_phone_and_address_are_personal() -> None:
    assert PERSONAL["customer"] == frozenset(c.CUSTOMER_FIELDS)
    assert not is_personal("order", "tracking_number")
    assert not is_personal("order", "refunds.re_1")


def test_an_unclassified_field_is_refused_with_where_to_declare_it() -> None:
    with pytest.raises(UnclassifiedField, match=r"domain/personal\.py"):
        is_personal("customer", "birthday")
