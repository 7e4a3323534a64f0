"""The ``stripe`` mapping: Stripe event objects onto orders and customers.

Stripe sends ``{"id": "evt_…", "type", "created", "data": {"object": {…}}}``,
where ``object`` is the whole object as it was when the event happened. An
order is the partner's own id, which the integration puts in a Checkout
Session's ``client_reference_id`` (or ``metadata.order_id``) and in the
``metadata.order_id`` of PaymentIntents and Charges.

| Stripe type | command |
|---|---|
| ``checkout.session.completed`` | create order; mark paid if ``payment_status`` |
| ``checkout.session.async_payment_succeeded`` | create order and mark paid |
| ``payment_intent.succeeded`` | mark paid (``amount_received``) |
| ``payment_intent.canceled`` | cancel (``cancellation_reason``) |
| ``charge.refunded`` | refund (``amount_refunded``, the refunded total) |
| ``customer.created``, ``customer.updated`` | update email, name, phone, address |
| ``customer.deleted`` | delete |

Ordering: Stripe does not guarantee delivery order, and ``created`` counts
whole seconds, so positions use ``created`` and, within a second, the object's
own progress (``amount_refunded`` only grows). Anything else is ``ignored``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from domain import commands as c
from infrastructure.mappings import ObjectId, Text, decoding

T = TypeVar("T")
Id = ObjectId
Cents = Annotated[int, Meta(ge=0, le=10**15)]


class Head(Struct):
    type: str


class Data(Struct, Generic[T]):
    object: T


class Event(Struct, Generic[T]):
    """A Stripe event whose ``data.object`` is a ``T``."""

    id: Id
    created: Annotated[int, Meta(ge=0, le=2**40)]
    data: Data[T]


class Metadata(Struct):
    metadata: dict[str, str] = {}

    @property
    def order_id(self) -> str | None:
        return self.metadata.get("order_id") or None


class CheckoutSession(Metadata, kw_only=True):
    id: Id
    client_reference_id: Id | None = None
    customer: Id | None = None
    currency: Annotated[str, Meta(pattern="^[A-Za-z]{3}$")] | None = None
    amount_total: Cents | None = None
    payment_status: str = "unpaid"


class PaymentIntent(Metadata, kw_only=True):
    id: Id
    amount_received: Cents = 0
    cancellation_reason: Text | None = None


class Charge(Metadata, kw_only=True):
    id: Id
    amount_refunded: Cents


class Customer(Struct, kw_only=True):
    id: Id
    email: Text | UnsetType | None = UNSET
    name: Text | UnsetType | None = UNSET
    phone: Text | UnsetType | None = UNSET
    address: dict[str, Text | None] | UnsetType | None = UNSET


def _at(event: Event[Any]) -> datetime:
    return datetime.fromtimestamp(event.created, UTC)


def _no_order(kind: str) -> c.Ignored:
    return c.Ignored(f"{kind} without metadata.order_id: not an idemsync order")


def checkout_completed(
    event: Event[CheckoutSession], event_paid: bool = False
) -> list[c.Command] | c.Ignored:
    """The order, and its payment when the session says it is paid
    (``event_paid``: the event itself says so, as the async success does)."""
    session, at = event.data.object, _at(event)
    order_id = session.client_reference_id or session.order_id
    if order_id is None:
        return c.Ignored("checkout session without client_reference_id")
    if session.amount_total is None or session.currency is None:
        return c.Ignored("checkout session without an amount (setup mode)")
    commands: list[c.Command] = [
        c.CreateOrder(
            order_id=order_id,
            customer_id=session.customer or "anonymous",
            currency=session.currency.upper(),
            total_cents=session.amount_total,
            occurred_at=at,
        )
    ]
    if session.payment_status == "paid" or event_paid:
        commands.append(
            c.MarkPaid(
                order_id=order_id, amount_cents=session.amount_total, occurred_at=at
            )
        )
    return commands


def payment_succeeded(event: Event[PaymentIntent]) -> list[c.Command] | c.Ignored:
    intent = event.data.object
    if intent.order_id is None:
        return _no_order("payment intent")
    return [
        c.MarkPaid(
            order_id=intent.order_id,
            amount_cents=intent.amount_received,
            occurred_at=_at(event),
            progress=intent.amount_received,
        )
    ]


def payment_canceled(event: Event[PaymentIntent]) -> list[c.Command] | c.Ignored:
    intent = event.data.object
    if intent.order_id is None:
        return _no_order("payment intent")
    return [
        c.CancelOrder(
            order_id=intent.order_id,
            reason=intent.cancellation_reason,
            occurred_at=_at(event),
        )
    ]


def charge_refunded(event: Event[Charge]) -> list[c.Command] | c.Ignored:
    charge = event.data.object
    if charge.order_id is None:
        return _no_order("charge")
    return [
        c.RefundOrder(
            order_id=charge.order_id,
            amount_cents=charge.amount_refunded,
            occurred_at=_at(event),
            progress=charge.amount_refunded,
        )
    ]


def customer_changed(event: Event[Customer]) -> list[c.Command]:
    customer = event.data.object
    fields = {
        name: getattr(customer, name)
        for name in c.CUSTOMER_FIELDS
        if getattr(customer, name) is not UNSET
    }
    return [
        c.UpsertCustomer(customer_id=customer.id, fields=fields, occurred_at=_at(event))
    ]


def customer_deleted(event: Event[Customer]) -> list[c.Command]:
    return [c.DeleteCustomer(customer_id=event.data.object.id, occurred_at=_at(event))]


Handler = Callable[[Any], Sequence[c.Command] | c.Ignored]
HANDLERS: dict[str, tuple[msgspec.json.Decoder[Any], Handler]] = {
    "checkout.session.completed": (
        msgspec.json.Decoder(Event[CheckoutSession]),
        checkout_completed,
    ),
    "checkout.session.async_payment_succeeded": (
        msgspec.json.Decoder(Event[CheckoutSession]),
        lambda event: checkout_completed(event, event_paid=True),
    ),
    "payment_intent.succeeded": (
        msgspec.json.Decoder(Event[PaymentIntent]),
        payment_succeeded,
    ),
    "payment_intent.canceled": (
        msgspec.json.Decoder(Event[PaymentIntent]),
        payment_canceled,
    ),
    "charge.refunded": (msgspec.json.Decoder(Event[Charge]), charge_refunded),
    "customer.created": (msgspec.json.Decoder(Event[Customer]), customer_changed),
    "customer.updated": (msgspec.json.Decoder(Event[Customer]), customer_changed),
    "customer.deleted": (msgspec.json.Decoder(Event[Customer]), customer_deleted),
}
_head_decoder = msgspec.json.Decoder(Head)


def map_stripe(
    body: bytes, headers: Mapping[str, str]
) -> Sequence[c.Command] | c.Ignored:
    """Decode a Stripe event and return its commands, or ``Ignored``."""
    with decoding():
        head = _head_decoder.decode(body)
        if head.type not in HANDLERS:
            return c.Ignored(f"no mapping for Stripe type {head.type!r}")
        decoder, handler = HANDLERS[head.type]
        event = decoder.decode(body)
    return handler(event)
