"""The ``standard`` mapping: the envelope ``{"type", "timestamp", "data"}``.

Each event type is a msgspec Struct tagged by ``type``; one decoder for the
union is built once. ``data.sequence``, where present, orders an object's
events; otherwise the envelope ``timestamp`` does. A paid or refunded total
only grows, so it is the progress that orders two such events at one
position value (``amount_cents``). Unknown fields are ignored
and new fields get defaults, so partners can add to their payloads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from domain import commands as c
from infrastructure.mappings import ObjectId, Text, decoding

Cents = Annotated[int, Meta(ge=0, le=10**15)]
Sequence_ = Annotated[int, Meta(ge=0, le=2**62)]
Currency = Annotated[str, Meta(pattern="^[A-Za-z]{3}$")]
Moment = Annotated[datetime, Meta(tz=True)]
Address = Text | dict[str, Text | None]


class Head(Struct):
    """Just enough of the envelope to tell whether we map its type."""

    type: str


class OrderData(Struct, kw_only=True):
    order_id: ObjectId
    sequence: Sequence_ | None = None


class OrderCreatedData(OrderData, kw_only=True):
    customer_id: ObjectId
    currency: Currency
    total_cents: Cents


class AmountData(OrderData, kw_only=True):
    amount_cents: Cents


class ShippedData(OrderData, kw_only=True):
    carrier: Text
    tracking_number: Text


class CancelledData(OrderData):
    reason: Text | None = None


class CustomerData(Struct, kw_only=True):
    customer_id: ObjectId
    sequence: Sequence_ | None = None


class UpsertedData(CustomerData):
    email: Text | UnsetType | None = UNSET
    name: Text | UnsetType | None = UNSET
    phone: Text | UnsetType | None = UNSET
    address: Address | UnsetType | None = UNSET


class Envelope(Struct, tag_field="type"):
    timestamp: Moment


class OrderCreated(Envelope, tag="order.created"):
    data: OrderCreatedData


class OrderPaid(Envelope, tag="order.paid"):
    data: AmountData


class OrderShipped(Envelope, tag="order.shipped"):
    data: ShippedData


class OrderDelivered(Envelope, tag="order.delivered"):
    data: OrderData


class OrderCancelled(Envelope, tag="order.cancelled"):
    data: CancelledData


class OrderRefunded(Envelope, tag="order.refunded"):
    data: AmountData


class CustomerUpserted(Envelope, tag="customer.upserted"):
    data: UpsertedData


class CustomerDeleted(Envelope, tag="customer.deleted"):
    data: CustomerData


Event = (
    OrderCreated
    | OrderPaid
    | OrderShipped
    | OrderDelivered
    | OrderCancelled
    | OrderRefunded
    | CustomerUpserted
    | CustomerDeleted
)
TYPES = frozenset(cls.__struct_config__.tag for cls in Event.__args__)

_head_decoder = msgspec.json.Decoder(Head)
_event_decoder = msgspec.json.Decoder(Event)


def to_command(event: Event) -> c.Command:
    """The domain command an envelope asks for."""
    at, seq = event.timestamp, event.data.sequence
    match event:
        case OrderCreated(data=d):
            return c.CreateOrder(
                order_id=d.order_id,
                customer_id=d.customer_id,
                currency=d.currency.upper(),
                total_cents=d.total_cents,
                occurred_at=at,
                sequence=seq,
            )
        case OrderPaid(data=d):
            return c.MarkPaid(
                order_id=d.order_id,
                amount_cents=d.amount_cents,
                occurred_at=at,
                sequence=seq,
                progress=d.amount_cents,
            )
        case OrderShipped(data=d):
            return c.MarkShipped(
                order_id=d.order_id,
                carrier=d.carrier,
                tracking_number=d.tracking_number,
                occurred_at=at,
                sequence=seq,
            )
        case OrderDelivered(data=d):
            return c.MarkDelivered(order_id=d.order_id, occurred_at=at, sequence=seq)
        case OrderCancelled(data=d):
            return c.CancelOrder(
                order_id=d.order_id, reason=d.reason, occurred_at=at, sequence=seq
            )
        case OrderRefunded(data=d):
            return c.RefundOrder(
                order_id=d.order_id,
                amount_cents=d.amount_cents,
                occurred_at=at,
                sequence=seq,
                progress=d.amount_cents,
            )
        case CustomerUpserted(data=d):
            sent = {
                name: getattr(d, name)
                for name in c.CUSTOMER_FIELDS
                if getattr(d, name) is not UNSET
            }
            return c.UpsertCustomer(
                customer_id=d.customer_id, fields=sent, occurred_at=at, sequence=seq
            )
        case CustomerDeleted(data=d):
            return c.DeleteCustomer(
                customer_id=d.customer_id, occurred_at=at, sequence=seq
            )
    raise AssertionError(f"unmapped envelope {type(event).__name__}")


def map_standard(
    body: bytes, headers: Mapping[str, str]
) -> Sequence[c.Command] | c.Ignored:
    """Decode the envelope and return its one command, or ``Ignored``."""
    with decoding():
        head = _head_decoder.decode(body)
        if head.type not in TYPES:
            return c.Ignored(f"no mapping for type {head.type!r}")
        event = _event_decoder.decode(body)
    return [to_command(event)]
