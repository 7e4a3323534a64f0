"""The ``stripe`` mapping: Stripe event objects onto orders and customers.

Stripe sends ``{"id": "evt_…", "type", "created", "data": {"object": {…}}}``,
where ``object`` is the whole object as it was when the event happened. An
order is the partner's own id, which the integration puts in a Checkout
Session's ``client_reference_id`` (or ``metadata.order_id``). A completed
session links its ``payment_intent`` to the order (``LinkPayment``); the
PaymentIntent's own events, and charges, refunds and disputes that name it,
find the order through that link (``OrderCommand.via_payment``; they wait on
the payment until the link is known), unless the object names its order in
``metadata.order_id``. An object that names neither is ``ignored``.

| Stripe type | commands |
|---|---|
| ``checkout.session.completed`` | create; pay if ``payment_status``; link payment |
| ``checkout.session.async_payment_succeeded`` | create order and mark paid |
| ``checkout.session.expired`` | cancel (reason ``checkout session expired``) |
| ``payment_intent.succeeded`` | mark paid (``amount_received``) |
| ``payment_intent.canceled`` | cancel (``cancellation_reason``) |
| ``charge.refunded`` | record each of ``refunds.data``; refund if ``refunded`` |
| ``refund.created``, ``refund.updated`` | record that refund by its id |
| ``charge.dispute.closed`` | record the dispute by its id (``lost`` or not) |
| ``invoice.paid`` | create order ``in_…`` and mark paid (``amount_paid``) |
| ``customer.created``, ``customer.updated`` | update email, name, phone, address |
| ``customer.deleted`` | delete |

A Checkout Session without ``customer`` (a guest) creates an order with no
customer (null). ``charge.refunded`` records each refund of the charge's
``refunds.data`` (when the API version still includes it) by its id, and
moves the order to refunded, stating ``amount_refunded`` as the total, only
when the whole charge is refunded (``refunded``): a partial refund keeps
books and never moves the status. A lost dispute counts its ``amount``
against revenue; ``won`` and ``warning_closed`` count nothing. An invoice
is an order of its own (customer, currency, total ``amount_paid``); one
that paid nothing is ignored. An expired session's cancellation parks when
its order does not exist (yet).

A refund's amount counts while its status is ``pending`` or ``succeeded``
(the money is on its way back, as in the charge's ``amount_refunded``); it
is 0 when ``failed`` or ``canceled``, and while ``requires_action`` (nothing
has left yet, and the customer may never act).

Ordering: Stripe does not guarantee delivery order, and ``created`` counts
whole seconds, so positions use ``created`` and, within a second, the
object's own progress, which only grows: ``amount_received``,
``amount_refunded``, and a refund's status by ``REFUND_PROGRESS``. Anything
else is ``ignored``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

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


class OrderRef(NamedTuple):
    """How a command finds its order: by its id, or, with ``order_id`` "",
    through the payment ``via_payment`` (see ``domain.payment``)."""

    order_id: str
    via_payment: str | None = None


class Paid(Metadata, kw_only=True):
    """An object of a payment: it names its order in ``metadata.order_id``
    where the integration put it there, and its PaymentIntent, which a
    completed Checkout Session links to its order."""

    payment_intent: Id | None = None

    def order(self) -> OrderRef | None:
        """Its order by ``metadata.order_id``, else through its payment;
        None when it names neither."""
        if self.order_id is not None:
            return OrderRef(self.order_id)
        if self.payment_intent is not None:
            return OrderRef("", self.payment_intent)
        return None


class CheckoutSession(Metadata, kw_only=True):
    id: Id
    payment_intent: Id | None = None
    client_reference_id: Id | None = None
    customer: Id | None = None
    currency: Annotated[str, Meta(pattern="^[A-Za-z]{3}$")] | None = None
    amount_total: Cents | None = None
    payment_status: str = "unpaid"


class PaymentIntent(Metadata, kw_only=True):
    id: Id
    amount_received: Cents = 0
    cancellation_reason: Text | None = None

    def order(self) -> OrderRef:
        """Its order by ``metadata.order_id``, else through itself."""
        if self.order_id is not None:
            return OrderRef(self.order_id)
        return OrderRef("", self.id)


class Refund(Paid, kw_only=True):
    """A Stripe Refund: on its own in ``refund.*``, or in a charge's list."""

    id: Id
    amount: Cents
    status: Text | None = None


class RefundList(Struct):
    data: list[Refund] = []


class Charge(Paid, kw_only=True):
    id: Id
    amount_refunded: Cents
    refunded: bool = False
    refunds: RefundList | None = None
    """Present in the webhook only where the account's API version still
    expands it (before 2022-11-15); ``refund.*`` carry each refund anyway."""


class Dispute(Paid, kw_only=True):
    id: Id
    amount: Cents
    status: Text


class Invoice(Metadata, kw_only=True):
    id: Id
    customer: Id | None = None
    currency: Annotated[str, Meta(pattern="^[A-Za-z]{3}$")]
    amount_paid: Cents


class Customer(Struct, kw_only=True):
    id: Id
    email: Text | UnsetType | None = UNSET
    name: Text | UnsetType | None = UNSET
    phone: Text | UnsetType | None = UNSET
    address: dict[str, Text | None] | UnsetType | None = UNSET


def _at(event: Event[Any]) -> datetime:
    return datetime.fromtimestamp(event.created, UTC)


def _no_order(kind: str) -> c.Ignored:
    return c.Ignored(
        f"{kind} without metadata.order_id or a payment_intent: not an idemsync order"
    )


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
            customer_id=session.customer,
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
    if session.payment_intent is not None:
        commands.append(
            c.LinkPayment(
                payment_id=session.payment_intent, order_id=order_id, occurred_at=at
            )
        )
    return commands


def payment_succeeded(event: Event[PaymentIntent]) -> list[c.Command] | c.Ignored:
    intent = event.data.object
    order = intent.order()
    return [
        c.MarkPaid(
            order_id=order.order_id,
            via_payment=order.via_payment,
            amount_cents=intent.amount_received,
            occurred_at=_at(event),
            progress=intent.amount_received,
        )
    ]


def payment_canceled(event: Event[PaymentIntent]) -> list[c.Command] | c.Ignored:
    intent = event.data.object
    order = intent.order()
    return [
        c.CancelOrder(
            order_id=order.order_id,
            via_payment=order.via_payment,
            reason=intent.cancellation_reason,
            occurred_at=_at(event),
        )
    ]


REFUND_PROGRESS: Mapping[str | None, int] = {
    "requires_action": 1,
    "pending": 2,
    "succeeded": 3,
    "failed": 4,
    "canceled": 4,
}
"""A refund's status as its progress: Stripe's clock counts whole seconds,
so two versions of one refund in the same second are ordered by how far the
refund got, never by their digest. A refund waits for the customer
(``requires_action``), is sent (``pending``), and ends ``succeeded``,
``failed`` or ``canceled``; a ``succeeded`` refund can still fail later (the
card was closed), so ``failed`` comes after it. ``failed`` and ``canceled``
tie: both count 0, so they state the same value. An unknown status is 0."""
COUNTED_REFUNDS = frozenset({"pending", "succeeded"})
"""The statuses whose amount counts as refunded (see the module docstring)."""


def _refund(order: OrderRef, refund: Refund, at: datetime) -> c.RecordRefund:
    return c.RecordRefund(
        order_id=order.order_id,
        via_payment=order.via_payment,
        refund_id=refund.id,
        amount_cents=refund.amount if refund.status in COUNTED_REFUNDS else 0,
        occurred_at=at,
        progress=REFUND_PROGRESS.get(refund.status, 0),
    )


def charge_refunded(event: Event[Charge]) -> list[c.Command] | c.Ignored:
    """Each refund the charge lists, by its id; and, only when the whole
    charge is refunded, the order's move to refunded with the stated total
    (a partial refund keeps books and leaves the status alone)."""
    charge, at = event.data.object, _at(event)
    refunds = charge.refunds.data if charge.refunds is not None else []
    order = charge.order() or next(
        (found for refund in refunds if (found := refund.order()) is not None), None
    )
    if order is None:
        return _no_order("charge")
    commands: list[c.Command] = [_refund(order, refund, at) for refund in refunds]
    if charge.refunded:
        commands.append(
            c.RefundOrder(
                order_id=order.order_id,
                via_payment=order.via_payment,
                amount_cents=charge.amount_refunded,
                occurred_at=at,
                progress=charge.amount_refunded,
            )
        )
    if not commands:
        return c.Ignored(
            "partial refund of a charge without its refunds list (API version "
            "2022-11-15 or later): refund.created and refund.updated carry them"
        )
    return commands


def refund_changed(event: Event[Refund]) -> list[c.Command] | c.Ignored:
    refund = event.data.object
    order = refund.order()
    if order is None:
        return _no_order("refund")
    return [_refund(order, refund, _at(event))]


CLOSED_DISPUTES = frozenset({"lost", "won", "warning_closed"})


def dispute_closed(event: Event[Dispute]) -> list[c.Command] | c.Ignored:
    """A closed dispute by its id; only a lost one counts its amount."""
    dispute = event.data.object
    order = dispute.order()
    if order is None:
        return _no_order("dispute")
    if dispute.status not in CLOSED_DISPUTES:
        return c.Ignored(f"dispute closed with an unknown status {dispute.status!r}")
    return [
        c.RecordDispute(
            order_id=order.order_id,
            via_payment=order.via_payment,
            dispute_id=dispute.id,
            amount_cents=dispute.amount,
            lost=dispute.status == "lost",
            occurred_at=_at(event),
        )
    ]


def checkout_expired(event: Event[CheckoutSession]) -> list[c.Command] | c.Ignored:
    """Cancel the session's order. The mapping cannot know whether the order
    exists: when nothing created it, the cancellation parks like any order
    event (another source sharing the namespace may still create it)."""
    session = event.data.object
    order_id = session.client_reference_id or session.order_id
    if order_id is None:
        return c.Ignored("checkout session without client_reference_id")
    return [
        c.CancelOrder(
            order_id=order_id, reason="checkout session expired", occurred_at=_at(event)
        )
    ]


def invoice_paid(event: Event[Invoice]) -> list[c.Command] | c.Ignored:
    """A paid invoice (a subscription's period) is an order of its own, whose
    id is the invoice id. An invoice that paid nothing (a trial, a 100 %
    discount) moved no money and would only count as a paid order: ignored."""
    invoice, at = event.data.object, _at(event)
    if invoice.amount_paid == 0:
        return c.Ignored("invoice paid nothing (a trial or a full discount)")
    return [
        c.CreateOrder(
            order_id=invoice.id,
            customer_id=invoice.customer,
            currency=invoice.currency.upper(),
            total_cents=invoice.amount_paid,
            occurred_at=at,
        ),
        c.MarkPaid(
            order_id=invoice.id,
            amount_cents=invoice.amount_paid,
            occurred_at=at,
            progress=invoice.amount_paid,
        ),
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
    "checkout.session.expired": (
        msgspec.json.Decoder(Event[CheckoutSession]),
        checkout_expired,
    ),
    "charge.refunded": (msgspec.json.Decoder(Event[Charge]), charge_refunded),
    "refund.created": (msgspec.json.Decoder(Event[Refund]), refund_changed),
    "refund.updated": (msgspec.json.Decoder(Event[Refund]), refund_changed),
    "charge.dispute.closed": (msgspec.json.Decoder(Event[Dispute]), dispute_closed),
    "invoice.paid": (msgspec.json.Decoder(Event[Invoice]), invoice_paid),
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
