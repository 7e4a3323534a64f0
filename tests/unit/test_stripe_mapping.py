"""The ``stripe`` mapping: Stripe events, as Stripe sends them, to domain
commands; and Stripe's reordering within a second converging through the
service."""

from __future__ import annotations

import copy
import inspect
import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.application import SyncService
from domain.commands import (
    CancelOrder,
    Command,
    CreateOrder,
    DeleteCustomer,
    Ignored,
    LinkPayment,
    MarkPaid,
    OrderCommand,
    RecordDispute,
    RecordRefund,
    RefundOrder,
    UpsertCustomer,
)
from domain.delivery import Delivery, Outcome
from domain.order import Order
from infrastructure.mappings import InvalidPayload, load_mapping
from infrastructure.mappings.stripe import map_stripe

CREATED = 1_730_455_200  # 2024-11-01T10:00:00Z
AT = datetime(2024, 11, 1, 10, 0, tzinfo=UTC)
ORDER_ID = "ord_1042"
PAYMENT_INTENT = "pi_3QGv2qLkdIwHu7ix1XyZaBcD"
CUSTOMER_ID = "cus_QvR3gT8mXkLp2a"


def event(
    type_: str, obj: dict[str, Any], *, created: int = CREATED, id_: str = ""
) -> dict[str, Any]:
    """A Stripe event envelope around ``obj``, as Stripe posts it."""
    return {
        "id": id_ or "evt_1QGv2rLkdIwHu7ixAbCdEf01",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_x8Y2kLmN0pQ1rS", "idempotency_key": None},
        "type": type_,
    }


def checkout_session(**changes: Any) -> dict[str, Any]:
    session: dict[str, Any] = {
        "id": "cs_test_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ",
        "object": "checkout.session",
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": 12000,
        "amount_total": 12500,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": "https://shop.example.com/cart",
        "client_reference_id": ORDER_ID,
        "created": CREATED - 95,
        "currency": "usd",
        "customer": CUSTOMER_ID,
        "customer_creation": None,
        "customer_details": {
            "address": {
                "city": "Portland",
                "country": "US",
                "line1": "1 Main St",
                "line2": None,
                "postal_code": "97201",
                "state": "OR",
            },
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "customer_email": None,
        "expires_at": CREATED + 86_305,
        "livemode": False,
        "locale": None,
        "metadata": {},
        "mode": "payment",
        "payment_intent": "pi_3QGv2qLkdIwHu7ix1XyZaBcD",
        "payment_method_types": ["card"],
        "payment_status": "paid",
        "shipping_cost": {
            "amount_subtotal": 500,
            "amount_tax": 0,
            "amount_total": 500,
            "shipping_rate": "shr_1QGuzRLkdIwHu7ixQwErTyUi",
        },
        "status": "complete",
        "success_url": "https://shop.example.com/thanks",
        "total_details": {
            "amount_discount": 0,
            "amount_shipping": 500,
            "amount_tax": 0,
        },
        "url": None,
    }
    session.update(changes)
    return session


def payment_intent(**changes: Any) -> dict[str, Any]:
    intent: dict[str, Any] = {
        "id": "pi_3QGv2qLkdIwHu7ix1XyZaBcD",
        "object": "payment_intent",
        "amount": 12500,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 12500,
        "application": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic_async",
        "client_secret": "pi_3QGv2qLkdIwHu7ix1XyZaBcD_secret_Zz9Yy8Xx7",
        "confirmation_method": "automatic",
        "created": CREATED - 60,
        "currency": "usd",
        "customer": CUSTOMER_ID,
        "description": None,
        "latest_charge": "ch_3QGv2qLkdIwHu7ix1hIjKlMn",
        "livemode": False,
        "metadata": {"order_id": ORDER_ID},
        "payment_method": "pm_1QGv2pLkdIwHu7ixOpQrStUv",
        "payment_method_types": ["card"],
        "receipt_email": "jenny.rosen@example.com",
        "status": "succeeded",
    }
    intent.update(changes)
    return intent


def charge(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "ch_3QGv2qLkdIwHu7ix1hIjKlMn",
        "object": "charge",
        "amount": 12500,
        "amount_captured": 12500,
        "amount_refunded": 500,
        "balance_transaction": "txn_3QGv2qLkdIwHu7ix1wXyZaBc",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": "97201",
                "state": None,
            },
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": None,
        },
        "captured": True,
        "created": CREATED - 60,
        "currency": "usd",
        "customer": CUSTOMER_ID,
        "disputed": False,
        "livemode": False,
        "metadata": {"order_id": ORDER_ID},
        "paid": True,
        "payment_intent": "pi_3QGv2qLkdIwHu7ix1XyZaBcD",
        "payment_method_details": {
            "card": {"brand": "visa", "last4": "4242", "exp_month": 8},
            "type": "card",
        },
        "receipt_url": "https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdF8x",
        "refunded": False,
        "refunds": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 1,
            "url": "/v1/charges/ch_3QGv2qLkdIwHu7ix1hIjKlMn/refunds",
        },
        "status": "succeeded",
    }
    obj.update(changes)
    return obj


REFUND_ID = "re_3QGv9zLkdIwHu7ix0AbCdEfG"


def refund(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": REFUND_ID,
        "object": "refund",
        "amount": 500,
        "balance_transaction": "txn_3QGv9zLkdIwHu7ix0HiJkLmN",
        "charge": "ch_3QGv2qLkdIwHu7ix1hIjKlMn",
        "created": CREATED - 5,
        "currency": "usd",
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": {"order_id": ORDER_ID},
        "payment_intent": "pi_3QGv2qLkdIwHu7ix1XyZaBcD",
        "reason": "requested_by_customer",
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    obj.update(changes)
    return obj


def refunds(*objs: dict[str, Any]) -> dict[str, Any]:
    """A charge's ``refunds`` list holding ``objs``."""
    return {
        "object": "list",
        "data": list(objs),
        "has_more": False,
        "total_count": len(objs),
        "url": "/v1/charges/ch_3QGv2qLkdIwHu7ix1hIjKlMn/refunds",
    }


def dispute(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "dp_1QGw0aLkdIwHu7ixDsPtAbCd",
        "object": "dispute",
        "amount": 12500,
        "charge": "ch_3QGv2qLkdIwHu7ix1hIjKlMn",
        "created": CREATED - 86_400,
        "currency": "usd",
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {"order_id": ORDER_ID},
        "payment_intent": "pi_3QGv2qLkdIwHu7ix1XyZaBcD",
        "reason": "fraudulent",
        "status": "lost",
    }
    obj.update(changes)
    return obj


def invoice(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "in_1QGv2rLkdIwHu7ixInVoIcE1",
        "object": "invoice",
        "amount_due": 2900,
        "amount_paid": 2900,
        "amount_remaining": 0,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": CREATED - 3600,
        "currency": "eur",
        "customer": CUSTOMER_ID,
        "metadata": {},
        "paid": True,
        "status": "paid",
        "subscription": "sub_1QGuzRLkdIwHu7ixSuBsCrPt",
        "total": 2900,
    }
    obj.update(changes)
    return obj


def customer(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": CUSTOMER_ID,
        "object": "customer",
        "address": {
            "city": "Portland",
            "country": "US",
            "line1": "1 Main St",
            "line2": None,
            "postal_code": "97201",
            "state": "OR",
        },
        "balance": 0,
        "created": CREATED - 3600,
        "currency": "usd",
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": "jenny.rosen@example.com",
        "invoice_prefix": "7D4B2E1A",
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": "Jenny Rosen",
        "phone": "+15035550123",
        "preferred_locales": ["en-US"],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    obj.update(changes)
    return obj


ADDRESS = customer()["address"]


def raw(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def mapped(document: dict[str, Any]) -> Sequence[Command] | Ignored:
    return map_stripe(raw(document), {"stripe-signature": "t=1,v1=00"})


def refusal(body: bytes) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as refused:
        map_stripe(body, {})
    return refused.value


# -- every mapped type -----------------------------------------------------------------

MAPPED: list[tuple[str, dict[str, Any], list[Command]]] = [
    (
        "checkout.session.completed",
        checkout_session(),
        [
            CreateOrder(
                order_id=ORDER_ID,
                customer_id=CUSTOMER_ID,
                currency="USD",
                total_cents=12500,
                occurred_at=AT,
            ),
            MarkPaid(order_id=ORDER_ID, amount_cents=12500, occurred_at=AT),
            LinkPayment(payment_id=PAYMENT_INTENT, order_id=ORDER_ID, occurred_at=AT),
        ],
    ),
    (
        "payment_intent.succeeded",
        payment_intent(),
        [
            MarkPaid(
                order_id=ORDER_ID, amount_cents=12500, occurred_at=AT, progress=12500
            )
        ],
    ),
    (
        "payment_intent.canceled",
        payment_intent(
            status="canceled",
            amount_received=0,
            canceled_at=CREATED,
            cancellation_reason="requested_by_customer",
        ),
        [
            CancelOrder(
                order_id=ORDER_ID, reason="requested_by_customer", occurred_at=AT
            )
        ],
    ),
    (
        "checkout.session.expired",
        checkout_session(status="expired", payment_status="unpaid"),
        [
            CancelOrder(
                order_id=ORDER_ID, reason="checkout session expired", occurred_at=AT
            )
        ],
    ),
    (
        "charge.refunded",
        charge(amount_refunded=500, refunds=refunds(refund())),
        [
            RecordRefund(
                order_id=ORDER_ID,
                refund_id=REFUND_ID,
                amount_cents=500,
                occurred_at=AT,
                progress=3,
            )
        ],
    ),
    (
        "refund.created",
        refund(status="pending"),
        [
            RecordRefund(
                order_id=ORDER_ID,
                refund_id=REFUND_ID,
                amount_cents=500,
                occurred_at=AT,
                progress=2,
            )
        ],
    ),
    (
        "refund.updated",
        refund(status="failed", failure_reason="expired_or_canceled_card"),
        [
            RecordRefund(
                order_id=ORDER_ID,
                refund_id=REFUND_ID,
                amount_cents=0,
                occurred_at=AT,
                progress=4,
            )
        ],
    ),
    (
        "charge.dispute.closed",
        dispute(),
        [
            RecordDispute(
                order_id=ORDER_ID,
                dispute_id="dp_1QGw0aLkdIwHu7ixDsPtAbCd",
                amount_cents=12500,
                lost=True,
                occurred_at=AT,
            )
        ],
    ),
    (
        "invoice.paid",
        invoice(),
        [
            CreateOrder(
                order_id="in_1QGv2rLkdIwHu7ixInVoIcE1",
                customer_id=CUSTOMER_ID,
                currency="EUR",
                total_cents=2900,
                occurred_at=AT,
            ),
            MarkPaid(
                order_id="in_1QGv2rLkdIwHu7ixInVoIcE1",
                amount_cents=2900,
                occurred_at=AT,
                progress=2900,
            ),
        ],
    ),
    (
        "customer.created",
        customer(),
        [
            UpsertCustomer(
                customer_id=CUSTOMER_ID,
                fields={
                    "email": "jenny.rosen@example.com",
                    "name": "Jenny Rosen",
                    "phone": "+15035550123",
                    "address": ADDRESS,
                },
                occurred_at=AT,
            )
        ],
    ),
    (
        "customer.updated",
        customer(email="jenny@example.org", phone=None),
        [
            UpsertCustomer(
                customer_id=CUSTOMER_ID,
                fields={
                    "email": "jenny@example.org",
                    "name": "Jenny Rosen",
                    "phone": None,
                    "address": ADDRESS,
                },
                occurred_at=AT,
            )
        ],
    ),
    (
        "customer.deleted",
        customer(),
        [DeleteCustomer(customer_id=CUSTOMER_ID, occurred_at=AT)],
    ),
]


@pytest.mark.parametrize(
    ("type_", "obj", "commands"), MAPPED, ids=[case[0] for case in MAPPED]
)
def test_each_mapped_stripe_type_gives_its_commands(
    type_: str, obj: dict[str, Any], commands: list[Command]
) -> None:
    assert list(mapped(event(type_, obj))) == commands


def test_the_stripe_mapping_is_loadable_by_name() -> None:
    assert inspect.unwrap(load_mapping("stripe")) is map_stripe


def test_occurred_at_is_the_events_created_second_in_utc() -> None:
    later = CREATED + 3_599
    commands = mapped(event("charge.refunded", charge(refunded=True), created=later))
    assert not isinstance(commands, Ignored)
    assert commands[0].occurred_at == datetime(2024, 11, 1, 10, 59, 59, tzinfo=UTC)
    assert commands[0].occurred_at.tzinfo is UTC


@pytest.mark.parametrize("currency", ["usd", "eur", "JPY", "Gbp"])
def test_the_currency_is_upper_cased(currency: str) -> None:
    commands = mapped(
        event("checkout.session.completed", checkout_session(currency=currency))
    )
    assert not isinstance(commands, Ignored)
    assert isinstance(commands[0], CreateOrder)
    assert commands[0].currency == currency.upper()


def test_a_full_refunds_progress_is_the_refunded_total() -> None:
    for refunded in (1, 500, 800, 12500):
        obj = charge(amount_refunded=refunded, refunded=True)
        commands = mapped(event("charge.refunded", obj))
        assert not isinstance(commands, Ignored)
        assert commands[-1].progress == refunded
        assert isinstance(commands[-1], RefundOrder)
        assert commands[-1].amount_cents == refunded


def test_a_fully_refunded_charge_records_its_refunds_and_states_the_total() -> None:
    first, second = refund(amount=5000), refund(id="re_2", amount=7500)
    obj = charge(amount_refunded=12500, refunded=True, refunds=refunds(second, first))
    assert [
        (command.type, command.values())
        for command in mapped(event("charge.refunded", obj))  # type: ignore[union-attr]
    ] == [
        ("order.refund_recorded", {"refunds.re_2": 7500}),
        ("order.refund_recorded", {f"refunds.{REFUND_ID}": 5000}),
        ("order.refunded", {"refunded_cents": 12500}),
    ]


def test_a_partial_refund_without_its_refunds_list_is_ignored_saying_why() -> None:
    obj = charge(amount_refunded=800)
    del obj["refunds"]
    answer = mapped(event("charge.refunded", obj))
    assert isinstance(answer, Ignored)
    assert "refund.created" in answer.reason


@pytest.mark.parametrize(
    ("status", "cents", "progress"),
    [
        ("requires_action", 0, 1),
        ("pending", 500, 2),
        ("succeeded", 500, 3),
        ("failed", 0, 4),
        ("canceled", 0, 4),
        ("some_future_status", 0, 0),
        (None, 0, 0),
    ],
)
def test_a_refund_counts_while_pending_or_succeeded_and_its_status_is_its_progress(
    status: str | None, cents: int, progress: int
) -> None:
    commands = mapped(event("refund.updated", refund(status=status)))
    assert not isinstance(commands, Ignored)
    assert [(c.values(), c.progress) for c in commands] == [
        ({f"refunds.{REFUND_ID}": cents}, progress)
    ]


def test_a_charge_without_an_order_id_takes_its_refunds_order_id() -> None:
    obj = charge(metadata={}, payment_intent=None, refunds=refunds(refund()))
    commands = mapped(event("charge.refunded", obj))
    assert not isinstance(commands, Ignored)
    assert [command.object_id for command in commands] == [ORDER_ID]


@pytest.mark.parametrize("status", ["won", "warning_closed"])
def test_a_dispute_that_was_not_lost_is_recorded_as_not_lost(status: str) -> None:
    commands = mapped(event("charge.dispute.closed", dispute(status=status)))
    assert not isinstance(commands, Ignored)
    assert [command.values() for command in commands] == [
        {"disputes.dp_1QGw0aLkdIwHu7ixDsPtAbCd": {"amount_cents": 12500, "lost": False}}
    ]


def test_a_dispute_closed_with_an_open_status_is_ignored_naming_it() -> None:
    answer = mapped(event("charge.dispute.closed", dispute(status="under_review")))
    assert isinstance(answer, Ignored)
    assert "under_review" in answer.reason


def test_an_invoice_of_a_guest_creates_an_order_without_a_customer() -> None:
    commands = mapped(event("invoice.paid", invoice(customer=None)))
    assert not isinstance(commands, Ignored)
    assert isinstance(commands[0], CreateOrder)
    assert commands[0].customer_id is None


def test_an_invoice_that_paid_nothing_is_ignored() -> None:
    answer = mapped(event("invoice.paid", invoice(amount_paid=0, total=0)))
    assert isinstance(answer, Ignored)
    assert "paid nothing" in answer.reason


def test_a_completed_checkout_that_is_unpaid_only_creates_the_order() -> None:
    session = checkout_session(payment_status="unpaid", payment_intent=None)
    assert list(mapped(event("checkout.session.completed", session))) == [
        CreateOrder(
            order_id=ORDER_ID,
            customer_id=CUSTOMER_ID,
            currency="USD",
            total_cents=12500,
            occurred_at=AT,
        )
    ]


def test_a_checkout_can_name_its_order_in_metadata() -> None:
    session = checkout_session(
        client_reference_id=None, metadata={"order_id": "ord_from_metadata"}
    )
    commands = mapped(event("checkout.session.completed", session))
    assert not isinstance(commands, Ignored)
    assert {
        command.object_id for command in commands if command.aggregate == "order"
    } == {"ord_from_metadata"}


def test_a_guest_checkout_creates_an_order_without_a_customer() -> None:
    session = checkout_session(customer=None, customer_creation="if_required")
    commands = mapped(event("checkout.session.completed", session))
    assert not isinstance(commands, Ignored)
    assert isinstance(commands[0], CreateOrder)
    assert commands[0].customer_id is None


def test_customer_fields_absent_from_the_object_are_not_touched() -> None:
    partial = {"id": CUSTOMER_ID, "object": "customer", "email": "j@example.com"}
    assert list(mapped(event("customer.updated", partial))) == [
        UpsertCustomer(
            customer_id=CUSTOMER_ID, fields={"email": "j@example.com"}, occurred_at=AT
        )
    ]


# -- finding the order through the payment ---------------------------------------------


@pytest.mark.parametrize(
    ("type_", "obj"),
    [
        ("payment_intent.succeeded", payment_intent(metadata={})),
        ("payment_intent.canceled", payment_intent(metadata={})),
        ("charge.refunded", charge(metadata={}, refunds=refunds(refund(metadata={})))),
        ("refund.created", refund(metadata={})),
        ("refund.updated", refund(metadata={})),
        ("charge.dispute.closed", dispute(metadata={})),
    ],
    ids=["intent-succeeded", "intent-canceled", "charge", "refund", "refund-u", "dp"],
)
def test_an_object_without_an_order_id_finds_its_order_through_its_payment(
    type_: str, obj: dict[str, Any]
) -> None:
    """A Checkout integration names the order in ``client_reference_id``
    only: the session links its PaymentIntent to the order, and the payment's
    later events find the order through that link."""
    commands = mapped(event(type_, obj))
    assert not isinstance(commands, Ignored)
    for command in commands:
        assert isinstance(command, OrderCommand)
        assert (command.order_id, command.via_payment) == ("", PAYMENT_INTENT)


def test_a_completed_checkout_links_its_payment_to_its_order() -> None:
    commands = mapped(event("checkout.session.completed", checkout_session()))
    assert not isinstance(commands, Ignored)
    assert commands[-1] == LinkPayment(
        payment_id=PAYMENT_INTENT, order_id=ORDER_ID, occurred_at=AT
    )


# -- ignored ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "obj", "says"),
    [
        (
            "checkout.session.completed",
            checkout_session(client_reference_id=None, metadata={}),
            "client_reference_id",
        ),
        (
            "charge.refunded",
            charge(metadata={"note": "manual"}, payment_intent=None),
            "order_id or a payment_intent",
        ),
        (
            "charge.refunded",
            charge(metadata={"order_id": ""}, payment_intent=None),
            "order_id",
        ),
        (
            "charge.refunded",
            charge(
                metadata={},
                payment_intent=None,
                refunds=refunds(refund(metadata={}, payment_intent=None)),
            ),
            "order_id",
        ),
        (
            "refund.created",
            refund(metadata={}, payment_intent=None),
            "refund without metadata.order_id",
        ),
        ("refund.updated", refund(metadata={}, payment_intent=None), "order_id"),
        (
            "charge.dispute.closed",
            dispute(metadata={}, payment_intent=None),
            "dispute without",
        ),
        (
            "checkout.session.expired",
            checkout_session(client_reference_id=None, status="expired"),
            "client_reference_id",
        ),
    ],
    ids=[
        "checkout",
        "charge",
        "empty-order-id",
        "charge-and-its-refunds",
        "refund-created",
        "refund-updated",
        "dispute",
        "expired-checkout",
    ],
)
def test_an_object_without_an_order_id_is_ignored_with_a_reason(
    type_: str, obj: dict[str, Any], says: str
) -> None:
    answer = mapped(event(type_, obj))
    assert isinstance(answer, Ignored)
    assert says in answer.reason


def test_a_setup_mode_checkout_without_an_amount_is_ignored() -> None:
    session = checkout_session(mode="setup", amount_total=None, currency=None)
    answer = mapped(event("checkout.session.completed", session))
    assert isinstance(answer, Ignored)
    assert "setup mode" in answer.reason


def test_an_async_payment_success_creates_and_pays_the_order() -> None:
    session = checkout_session(payment_status="unpaid")
    commands = mapped(event("checkout.session.async_payment_succeeded", session))
    assert not isinstance(commands, Ignored)
    assert [command.type for command in commands] == [
        "order.created",
        "order.paid",
        "payment.linked",
    ]


@pytest.mark.parametrize(
    "type_",
    ["invoice.created", "charge.succeeded", "payout.paid", "charge.dispute.created"],
)
def test_an_unmapped_type_is_ignored_naming_the_type(type_: str) -> None:
    answer = mapped(event(type_, {"id": "in_1QGv2rLkdIwHu7ixAbC", "object": "invoice"}))
    assert isinstance(answer, Ignored)
    assert type_ in answer.reason


def test_an_unmapped_type_is_ignored_whatever_its_data() -> None:
    answer = map_stripe(b'{"type": "invoice.created", "data": "anything"}', {})
    assert answer == Ignored("no mapping for Stripe type 'invoice.created'")


# -- schema errors ---------------------------------------------------------------------


def without(document: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for name in path[:-1]:
        target = target[name]
    del target[path[-1]]
    return changed


def replaced(document: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    target = changed
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    return changed


CHECKOUT = event("checkout.session.completed", checkout_session())
REFUND = event("charge.refunded", charge())
CUSTOMER = event("customer.updated", customer())


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (raw(without(CHECKOUT, "type")), "$"),
        (raw(replaced(CHECKOUT, 7, "type")), "$.type"),
        (raw(without(CHECKOUT, "id")), "$"),
        (raw(replaced(CHECKOUT, "", "id")), "$.id"),
        (raw(without(CHECKOUT, "created")), "$"),
        (raw(replaced(CHECKOUT, "2024-11-01", "created")), "$.created"),
        (raw(replaced(CHECKOUT, -1, "created")), "$.created"),
        (raw(without(CHECKOUT, "data")), "$"),
        (raw(without(CHECKOUT, "data", "object")), "$.data"),
        (
            raw(replaced(CHECKOUT, "125.00", "data", "object", "amount_total")),
            "$.data.object.amount_total",
        ),
        (
            raw(replaced(CHECKOUT, -5, "data", "object", "amount_total")),
            "$.data.object.amount_total",
        ),
        (
            raw(replaced(CHECKOUT, "dollars", "data", "object", "currency")),
            "$.data.object.currency",
        ),
        (
            raw(replaced(CHECKOUT, {"order_id": 42}, "data", "object", "metadata")),
            "$.data.object.metadata[...]",  # msgspec names a dict value so
        ),
        (
            raw(without(REFUND, "data", "object", "amount_refunded")),
            "$.data.object",
        ),
        (
            raw(replaced(REFUND, 5.5, "data", "object", "amount_refunded")),
            "$.data.object.amount_refunded",
        ),
        (
            raw(replaced(CUSTOMER, ["j@example.com"], "data", "object", "email")),
            "$.data.object.email",
        ),
        (raw(replaced(CUSTOMER, 7, "data", "object", "id")), "$.data.object.id"),
    ],
)
def test_a_schema_error_is_invalid_payload_naming_the_path(
    body: bytes, path: str
) -> None:
    error = refusal(body)
    assert error.path == path
    assert error.message


@pytest.mark.parametrize(
    "body", [b"", b"not json", b'{"type": "charge.refunded"', b"\xff", b"[]", b"null"]
)
def test_a_body_that_is_not_a_json_object_is_invalid_payload(body: bytes) -> None:
    assert refusal(body).path.startswith("$")


# -- convergence: two refunds in the same second, in any order -------------------------

MEMORY = {"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}
HISTORY = [
    event(
        "checkout.session.completed",
        checkout_session(),
        created=CREATED,
        id_="evt_1QGv2rLkdIwHu7ixCheckout",
    ),
    event(
        "charge.refunded",
        charge(amount_refunded=500, refunds=refunds(refund(status="pending"))),
        created=CREATED + 120,
        id_="evt_3QGv9zLkdIwHu7ixRefund500",
    ),
    event(
        "charge.refunded",
        charge(
            amount_refunded=800,
            refunds=refunds(refund(id="re_2", amount=300), refund()),
        ),
        created=CREATED + 120,
        id_="evt_3QGv9zLkdIwHu7ixRefund800",
    ),
]


def deliver(schedule: Sequence[dict[str, Any]]) -> tuple[SyncService, list[Outcome]]:
    service = SyncService(env=MEMORY)
    outcomes = []
    for document in schedule:
        body = raw(document)
        delivery = Delivery("stripe", document["id"], AT, body)
        outcomes.append(service.receive(delivery, map_stripe(body, {})).outcome)
    return service, outcomes


def order_state(service: SyncService) -> dict[str, Any]:
    state = service.state_of("order", ORDER_ID)
    assert state is not None
    return {"status": state["status"], **state["values"]}


def test_partial_refunds_in_order_keep_books_by_id_and_leave_the_order_paid() -> None:
    service, outcomes = deliver(HISTORY)
    assert outcomes == [Outcome.APPLIED] * 3
    assert order_state(service) == {
        "status": "paid",
        "customer_id": CUSTOMER_ID,
        "currency": "USD",
        "total_cents": 12500,
        "paid_cents": 12500,
        f"refunds.{REFUND_ID}": 500,
        "refunds.re_2": 300,
    }


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(range(3))),
    ids=lambda order: "-".join(map(str, order)),
)
def test_refunds_in_the_same_second_converge_in_any_order(
    order: tuple[int, ...],
) -> None:
    expected = order_state(deliver(HISTORY)[0])
    schedule = [HISTORY[index] for index in order]
    service, _ = deliver(schedule)
    assert order_state(service) == expected
    assert Order.money_of(expected).refunded_cents == 800


@pytest.mark.parametrize(
    "order",
    list(itertools.permutations(range(3))),
    ids=lambda order: "-".join(map(str, order)),
)
def test_retries_of_stripe_events_change_nothing_more(order: tuple[int, ...]) -> None:
    expected = order_state(deliver(HISTORY)[0])
    schedule = [HISTORY[index] for index in order]
    service, outcomes = deliver(schedule + schedule[::-1])
    assert outcomes[3:] == [Outcome.DUPLICATE] * 3
    assert order_state(service) == expected


def test_a_charge_refunded_before_its_order_keeps_every_refund_it_lists() -> None:
    second = refund(id="re_2", amount=12000)
    whole = charge(
        amount_refunded=12500, refunded=True, refunds=refunds(second, refund())
    )
    service, outcomes = deliver(
        [
            event("charge.refunded", whole, created=CREATED + 60, id_="evt_refund"),
            event("checkout.session.completed", checkout_session(), id_="evt_co"),
        ]
    )
    assert outcomes == [Outcome.PARKED, Outcome.APPLIED]
    state = order_state(service)
    assert state["status"] == "refunded"
    assert Order.money_of(state).refunded_cents == 12500
