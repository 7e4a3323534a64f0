"""The ``shopify`` mapping, the default of ``scheme = "shopify"``: Shopify
webhooks (topic in ``X-Shopify-Topic``, the object itself as the body) onto
orders and customers. Ids are Shopify's numeric ids as strings; money is in
the currency's minor units by its ISO 4217 exponent (``money.minor_units``).

- ``orders/create|updated|paid|fulfilled|partially_fulfilled|cancelled``:
  the whole order. Create (customer, currency, ``total_price``); paid
  (``total_price``) when ``financial_status`` is paid, partially_refunded or
  refunded; shipped (and delivered) from its latest fulfillment when
  ``fulfillment_status`` is fulfilled; cancelled when ``cancelled_at`` is
  set; one refund by id per entry of ``refunds``.
- ``refunds/create``: one refund by id.
- ``fulfillments/create|update``: shipped (``tracking_company``,
  ``tracking_number``), delivered when ``shipment_status`` is delivered.
- ``customers/create|update``: upsert (name, email, phone, default address).
- ``customers/delete``, ``customers/redact``: delete the customer.
- ``shop/redact``, ``customers/data_request``: ``ignored``, recorded with the
  payload for the operator. Any other topic: ``ignored``.

A guest order (no ``customer``) has no customer (``customer_id`` null),
never a made-up id shared by every guest. A refund's amount is the sum of
its successful ``refund`` transactions.

Positions. Every ``orders/*`` delivery restates the whole order, so a late
``orders/create`` must not move a shipped order back to created, and an
``orders/updated`` must not be refused as a move back either. Each command is
therefore placed at the time of the thing it states: the order's creation
(create, paid), its fulfillment's creation (shipped, delivered), its
``cancelled_at``, the refund's creation. Within that time, ``progress``
counts the seconds the object's ``updated_at`` is past it, so the newest
restatement of a field wins (a total edited later, a tracking number
corrected), while the status only moves forward. A refund's progress is its
amount, so a refund whose transaction succeeds later grows. The same
refund in ``refunds/create`` and in ``orders/updated`` is the same command at
the same position: counted once, in either order.

Shopify's timestamps count whole seconds. Two deliveries of one change in the
same second (``orders/paid`` and ``orders/updated`` for one payment) carry the
whole order and state the same values: the same commands at the same
positions, so the second is ``stale`` and harmless. Two different changes in
the same second are ordered by the digest of what they say: deterministic on
every process, but not necessarily Shopify's order.

Customer deletions carry no timestamp (``customers/delete`` is the id and a few
empty fields; ``customers/redact`` is a compliance request): they are placed at
``X-Shopify-Triggered-At``, when Shopify triggered the webhook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from domain import commands as c
from infrastructure.mappings import InvalidPayload, Text, decoding
from infrastructure.mappings.money import minor_units

ShopifyId = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Moment = Annotated[datetime, Meta(tz=True)]
Currency = Annotated[str, Meta(pattern="^[A-Za-z]{3}$")]
Amount = Annotated[str, Meta(max_length=40)]
"""A decimal string ("125.00"); ``money.minor_units`` reads it."""

PAID = frozenset({"paid", "partially_refunded", "refunded"})
"""``financial_status`` values that say the order's total was paid (refunds
are recorded by id, apart from the payment)."""
NOT_SHIPPED = frozenset({"cancelled", "error", "failure"})
"""Fulfillment ``status`` values that shipped nothing."""
ORDER_TOPICS = (
    "orders/create",
    "orders/updated",
    "orders/paid",
    "orders/fulfilled",
    "orders/partially_fulfilled",
    "orders/cancelled",
)
ACKNOWLEDGED = ("shop/redact", "customers/data_request")
"""Mandatory compliance topics with nothing to change here: kept, with their
payload, for the operator to act on."""


class Transaction(Struct, kw_only=True):
    kind: str = ""
    status: str | None = None
    amount: Amount = "0"
    currency: Currency | None = None


class Refund(Struct, kw_only=True):
    """A refund, as ``refunds/create`` sends it and as an order lists it."""

    id: ShopifyId
    order_id: ShopifyId
    created_at: Moment
    transactions: list[Transaction] = []


class Fulfillment(Struct, kw_only=True):
    """A fulfillment, as ``fulfillments/*`` sends it and as an order lists it."""

    id: ShopifyId
    order_id: ShopifyId
    created_at: Moment
    updated_at: Moment | None = None
    status: str | None = None
    tracking_company: Text | None = None
    tracking_number: Text | None = None
    shipment_status: str | None = None


class OrderCustomer(Struct):
    id: ShopifyId


class Order(Struct, kw_only=True):
    id: ShopifyId
    created_at: Moment
    updated_at: Moment | None = None
    currency: Currency
    total_price: Amount
    financial_status: str | None = None
    fulfillment_status: str | None = None
    cancelled_at: Moment | None = None
    cancel_reason: Text | None = None
    customer: OrderCustomer | None = None
    fulfillments: list[Fulfillment] = []
    refunds: list[Refund] = []


class Address(Struct, kw_only=True):
    """The address fields kept (Shopify's ids and flags are left out)."""

    first_name: Text | None = None
    last_name: Text | None = None
    company: Text | None = None
    address1: Text | None = None
    address2: Text | None = None
    city: Text | None = None
    province: Text | None = None
    province_code: Text | None = None
    zip: Text | None = None
    country: Text | None = None
    country_code: Text | None = None
    phone: Text | None = None


class Customer(Struct, kw_only=True):
    id: ShopifyId
    created_at: Moment | None = None
    updated_at: Moment | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    email: Text | None = None
    phone: Text | None = None
    default_address: Address | None = None


class DeletedCustomer(Struct):
    id: ShopifyId


class RedactRequest(Struct):
    customer: DeletedCustomer


class AnyObject(Struct):
    """A JSON object, whatever its fields."""


def _progress(since: datetime, updated: datetime | None) -> int:
    """Whole seconds ``updated`` is past ``since`` (0 when not later)."""
    if updated is None:
        return 0
    return max(0, int((updated - since).total_seconds()))


def refund_command(refund: Refund, path: str) -> c.RecordRefund:
    """The refund by its id: its successful refund transactions, summed."""
    cents = 0
    for index, transaction in enumerate(refund.transactions):
        if transaction.kind != "refund" or transaction.status != "success":
            continue
        at = f"{path}.transactions[{index}]"
        if transaction.currency is None:
            raise InvalidPayload("a refund transaction without a currency", at)
        cents += minor_units(
            transaction.amount, transaction.currency, f"{at}.amount", f"{at}.currency"
        )
    return c.RecordRefund(
        order_id=str(refund.order_id),
        refund_id=str(refund.id),
        amount_cents=cents,
        occurred_at=refund.created_at,
        progress=cents,
    )


def fulfillment_commands(fulfillment: Fulfillment) -> list[c.Command]:
    """Shipped, and delivered when the carrier says so; nothing for a
    fulfillment that shipped nothing."""
    if fulfillment.status in NOT_SHIPPED:
        return []
    order_id, at = str(fulfillment.order_id), fulfillment.created_at
    progress = _progress(at, fulfillment.updated_at)
    commands: list[c.Command] = [
        c.MarkShipped(
            order_id=order_id,
            carrier=fulfillment.tracking_company or "",
            tracking_number=fulfillment.tracking_number or "",
            occurred_at=at,
            progress=progress,
        )
    ]
    if fulfillment.shipment_status == "delivered":
        commands.append(
            c.MarkDelivered(order_id=order_id, occurred_at=at, progress=progress)
        )
    return commands


def order_commands(order: Order) -> list[c.Command]:
    """The whole order's state, as commands (see the module's Positions)."""
    order_id, created = str(order.id), order.created_at
    progress = _progress(created, order.updated_at)
    total = minor_units(order.total_price, order.currency, "$.total_price")
    commands: list[c.Command] = [
        c.CreateOrder(
            order_id=order_id,
            customer_id=str(order.customer.id) if order.customer else None,
            currency=order.currency.upper(),
            total_cents=total,
            occurred_at=created,
            progress=progress,
        )
    ]
    if order.financial_status in PAID:
        commands.append(
            c.MarkPaid(
                order_id=order_id,
                amount_cents=total,
                occurred_at=created,
                progress=progress,
            )
        )
    shipped = [f for f in order.fulfillments if f.status not in NOT_SHIPPED]
    if order.fulfillment_status == "fulfilled" and shipped:
        commands += fulfillment_commands(max(shipped, key=lambda f: f.created_at))
    if order.cancelled_at is not None:
        commands.append(
            c.CancelOrder(
                order_id=order_id,
                reason=order.cancel_reason,
                occurred_at=order.cancelled_at,
                progress=_progress(order.cancelled_at, order.updated_at),
            )
        )
    commands += [
        refund_command(refund, f"$.refunds[{index}]")
        for index, refund in enumerate(order.refunds)
    ]
    return commands


def customer_commands(customer: Customer) -> list[c.Command]:
    at = customer.updated_at or customer.created_at
    if at is None:
        raise InvalidPayload("a customer without updated_at or created_at")
    name = " ".join(n for n in (customer.first_name, customer.last_name) if n)
    address = customer.default_address
    fields: dict[str, Any] = {
        "name": name or None,
        "email": customer.email,
        "phone": customer.phone,
        "address": None if address is None else msgspec.structs.asdict(address),
    }
    return [
        c.UpsertCustomer(customer_id=str(customer.id), fields=fields, occurred_at=at)
    ]


def triggered_at(headers: Mapping[str, str]) -> datetime:
    """When Shopify triggered the webhook: the time of a deletion, whose
    payload has none."""
    value = headers.get("x-shopify-triggered-at")
    if not value:
        raise InvalidPayload("no X-Shopify-Triggered-At header: no time to place it")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPayload(
            f"X-Shopify-Triggered-At is not a time: {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise InvalidPayload("X-Shopify-Triggered-At has no time zone")
    return moment


def _delete(customer_id: int, headers: Mapping[str, str]) -> list[c.Command]:
    return [
        c.DeleteCustomer(
            customer_id=str(customer_id), occurred_at=triggered_at(headers)
        )
    ]


Handler = Callable[[Any, Mapping[str, str]], Sequence[c.Command] | c.Ignored]


def _for_orders(order: Order, headers: Mapping[str, str]) -> list[c.Command]:
    return order_commands(order)


def _for_refund(refund: Refund, headers: Mapping[str, str]) -> list[c.Command]:
    return [refund_command(refund, "$")]


def _for_fulfillment(
    fulfillment: Fulfillment, headers: Mapping[str, str]
) -> list[c.Command] | c.Ignored:
    return fulfillment_commands(fulfillment) or c.Ignored(
        f"fulfillment status {fulfillment.status!r} shipped nothing"
    )


def _for_customer(customer: Customer, headers: Mapping[str, str]) -> list[c.Command]:
    return customer_commands(customer)


def _for_deleted(
    customer: DeletedCustomer, headers: Mapping[str, str]
) -> list[c.Command]:
    return _delete(customer.id, headers)


def _for_redact(request: RedactRequest, headers: Mapping[str, str]) -> list[c.Command]:
    return _delete(request.customer.id, headers)


_redact_decoder = msgspec.json.Decoder(RedactRequest)


def erasures_requested(body: bytes, headers: Mapping[str, str]) -> list[str]:
    """The customers a delivery asks to erase: ``customers/redact``'s, the
    compliance topic every Shopify app must honour (the pipeline erases
    them once the delivery is recorded, and again on each retry: an erasure
    is safe to repeat). None for any other topic, or a body its own
    mapping refuses."""
    if headers.get("x-shopify-topic") != "customers/redact":
        return []
    try:
        request = _redact_decoder.decode(body)
    except msgspec.MsgspecError:
        return []
    return [str(request.customer.id)]


_order_decoder = msgspec.json.Decoder(Order)
_customer_decoder = msgspec.json.Decoder(Customer)
HANDLERS: dict[str, tuple[msgspec.json.Decoder[Any], Handler]] = {
    **{topic: (_order_decoder, _for_orders) for topic in ORDER_TOPICS},
    "refunds/create": (msgspec.json.Decoder(Refund), _for_refund),
    "fulfillments/create": (msgspec.json.Decoder(Fulfillment), _for_fulfillment),
    "fulfillments/update": (msgspec.json.Decoder(Fulfillment), _for_fulfillment),
    "customers/create": (_customer_decoder, _for_customer),
    "customers/update": (_customer_decoder, _for_customer),
    "customers/delete": (msgspec.json.Decoder(DeletedCustomer), _for_deleted),
    "customers/redact": (_redact_decoder, _for_redact),
}
TOPICS = (*HANDLERS, *ACKNOWLEDGED)
"""Every topic this mapping reads (README "Partners → Shopify")."""
_object_decoder = msgspec.json.Decoder(AnyObject)


def map_shopify(
    body: bytes, headers: Mapping[str, str]
) -> Sequence[c.Command] | c.Ignored:
    """Decode a Shopify webhook by its topic and return its commands, or
    ``Ignored``."""
    topic = headers.get("x-shopify-topic", "")
    with decoding():
        if topic not in HANDLERS:
            _object_decoder.decode(body)
            if topic in ACKNOWLEDGED:
                return c.Ignored(
                    f"Shopify compliance topic {topic!r} recorded with its "
                    "payload for the operator: nothing to change here"
                )
            return c.Ignored(f"no mapping for Shopify topic {topic[:100]!r}")
        decoder, handler = HANDLERS[topic]
        payload = decoder.decode(body)
    return handler(payload, headers)
