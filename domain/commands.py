"""Domain commands: what a mapping makes of a verified payload.

A mapping (``infrastructure.mappings``) turns a partner's payload into zero or
more of these. Each command names one object and carries the values it states,
the source's ``sequence`` when it has one, the source time it occurred at and,
where the mapping knows one, a ``progress`` counter from the object's state;
the position that orders it against the object's other events is derived from
those (see ``domain.rules``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from domain.rules import RANK, Position

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True, kw_only=True)
class Command:
    """A request to change one object, as stated by a partner."""

    type: ClassVar[str]
    aggregate: ClassVar[str]
    occurred_at: datetime
    sequence: int | None = None
    progress: int = 0

    @property
    def object_id(self) -> str:
        raise NotImplementedError

    def values(self) -> dict[str, Any]:
        """The object's fields this command states, by field name."""
        raise NotImplementedError

    def position(self) -> Position:
        """Where this command sits in its object's history (see domain.rules):
        the same for every delivery that says the same thing, whatever its key."""
        value = (
            self.sequence if self.sequence is not None else _micros(self.occurred_at)
        )
        return (value, RANK[self.type], self.progress, self.digest())

    def digest(self) -> str:
        """A digest of what the command says about its object: its type and
        the values it states (not its key, nor when it was sent)."""
        content = json.dumps(
            [self.type, self.values()],
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(content.encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for parking the command inside an event."""
        data = dataclasses.asdict(self)
        data["type"] = self.type
        data["occurred_at"] = self.occurred_at.isoformat()
        return data

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Command:
        fields = dict(data)
        cls = COMMANDS[fields.pop("type")]
        fields["occurred_at"] = datetime.fromisoformat(fields["occurred_at"])
        return cls(**fields)


@dataclass(frozen=True, kw_only=True)
class OrderCommand(Command):
    aggregate: ClassVar[str] = "order"
    order_id: str
    via_payment: str | None = None
    """The partner's payment (a Stripe PaymentIntent) that names the order,
    for an event that does not name it itself: ``order_id`` is then "" and
    the order is the one the payment was linked to (``LinkPayment``); until
    the link is known the command waits on the payment."""

    def for_order(self, order_id: str) -> OrderCommand:
        """This command, addressed to ``order_id``."""
        return dataclasses.replace(self, order_id=order_id)

    @property
    def object_id(self) -> str:
        return self.order_id


@dataclass(frozen=True, kw_only=True)
class CreateOrder(OrderCommand):
    """A new order; ``customer_id`` is None for a guest (a partner's checkout
    without a customer), never a made-up id shared by every guest."""

    type: ClassVar[str] = "order.created"
    customer_id: str | None
    currency: str
    total_cents: int

    def values(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "currency": self.currency,
            "total_cents": self.total_cents,
        }


@dataclass(frozen=True, kw_only=True)
class MarkPaid(OrderCommand):
    type: ClassVar[str] = "order.paid"
    amount_cents: int

    def values(self) -> dict[str, Any]:
        return {"paid_cents": self.amount_cents}


@dataclass(frozen=True, kw_only=True)
class MarkShipped(OrderCommand):
    type: ClassVar[str] = "order.shipped"
    carrier: str
    tracking_number: str

    def values(self) -> dict[str, Any]:
        return {"carrier": self.carrier, "tracking_number": self.tracking_number}


@dataclass(frozen=True, kw_only=True)
class MarkDelivered(OrderCommand):
    type: ClassVar[str] = "order.delivered"

    def values(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, kw_only=True)
class CancelOrder(OrderCommand):
    type: ClassVar[str] = "order.cancelled"
    reason: str | None = None

    def values(self) -> dict[str, Any]:
        return {} if self.reason is None else {"cancel_reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class RefundOrder(OrderCommand):
    """The refunded total as the partner states it; moves the status to
    refunded."""

    type: ClassVar[str] = "order.refunded"
    amount_cents: int

    def values(self) -> dict[str, Any]:
        return {"refunded_cents": self.amount_cents}


REFUNDS = "refunds."
"""The prefix of an order's refund fields: ``refunds.<refund id>`` holds that
refund's amount."""
DISPUTES = "disputes."
"""The prefix of an order's dispute fields: ``disputes.<dispute id>`` holds
that closed dispute's ``{"amount_cents", "lost"}``."""


@dataclass(frozen=True, kw_only=True)
class RecordRefund(OrderCommand):
    """One of the partner's refunds of the order, by its id (amount 0: it
    failed or was cancelled). Bookkeeping: the status is left alone.

    Each refund is its own field, so the same refund carried by several
    events (Stripe's ``charge.refunded`` and ``refund.*``, Shopify's
    ``refunds/create`` and ``orders/updated``) counts once, and an update of
    it replaces it by position."""

    type: ClassVar[str] = "order.refund_recorded"
    refund_id: str
    amount_cents: int

    def values(self) -> dict[str, Any]:
        return {f"{REFUNDS}{self.refund_id}": self.amount_cents}


@dataclass(frozen=True, kw_only=True)
class RecordDispute(OrderCommand):
    """A closed dispute of the order, by the partner's id; ``lost``: the
    money went back to the customer and counts against revenue.
    Bookkeeping: the status is left alone."""

    type: ClassVar[str] = "order.dispute_closed"
    dispute_id: str
    amount_cents: int
    lost: bool

    def values(self) -> dict[str, Any]:
        return {
            f"{DISPUTES}{self.dispute_id}": {
                "amount_cents": self.amount_cents,
                "lost": self.lost,
            }
        }


CUSTOMER_FIELDS = ("email", "name", "phone", "address")
"""A customer's fields (all personal: ``domain.personal``): cleared when the
customer is deleted."""


@dataclass(frozen=True, kw_only=True)
class CustomerCommand(Command):
    aggregate: ClassVar[str] = "customer"
    customer_id: str

    @property
    def object_id(self) -> str:
        return self.customer_id


@dataclass(frozen=True, kw_only=True)
class UpsertCustomer(CustomerCommand):
    """Set the given fields; ``fields`` holds only the ones the partner sent
    (a ``None`` value clears that field)."""

    type: ClassVar[str] = "customer.upserted"
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(CUSTOMER_FIELDS)
        if unknown:
            raise ValueError(f"unknown customer fields: {sorted(unknown)}")

    def values(self) -> dict[str, Any]:
        return dict(self.fields)


@dataclass(frozen=True, kw_only=True)
class DeleteCustomer(CustomerCommand):
    type: ClassVar[str] = "customer.deleted"

    def values(self) -> dict[str, Any]:
        return dict.fromkeys(CUSTOMER_FIELDS)


@dataclass(frozen=True, kw_only=True)
class LinkPayment(Command):
    """A partner's payment belongs to an order (a Stripe Checkout Session
    names both its order and its PaymentIntent): events about the payment
    that do not name the order find it through this link."""

    type: ClassVar[str] = "payment.linked"
    aggregate: ClassVar[str] = "payment"
    payment_id: str
    order_id: str

    @property
    def object_id(self) -> str:
        return self.payment_id

    def values(self) -> dict[str, Any]:
        return {"order_id": self.order_id}


COMMANDS: dict[str, type[Command]] = {
    cls.type: cls
    for cls in (
        CreateOrder,
        MarkPaid,
        MarkShipped,
        MarkDelivered,
        CancelOrder,
        RefundOrder,
        RecordRefund,
        RecordDispute,
        UpsertCustomer,
        DeleteCustomer,
        LinkPayment,
    )
}


@dataclass(frozen=True)
class Ignored:
    """A mapping's answer for a payload it has no command for."""

    reason: str
