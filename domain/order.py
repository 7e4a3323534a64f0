"""The order aggregate: one partner order, from creation to refund."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from eventsourcing.domain import event

from domain.commands import DISPUTES, REFUNDS
from domain.namespaces import DEFAULT_NAMESPACE
from domain.objects import SyncedObject
from domain.rules import ORDER_STATUS_OF, ORDER_TRANSITIONS


@dataclass(frozen=True)
class Money:
    """What went back out of an order's payment: ``refunded_cents`` (None
    while nothing was refunded, neither a stated total nor a refund by id)
    and ``disputed_cents``, the lost disputes."""

    refunded_cents: int | None
    disputed_cents: int


def is_money_field(name: str) -> bool:
    """Whether ``Order.money_of`` reads the field ``name``."""
    return name == "refunded_cents" or name.startswith((REFUNDS, DISPUTES))


class Order(SyncedObject):
    """An order. Its status follows ``domain.rules.ORDER_TRANSITIONS``; its
    fields (customer_id, currency, total_cents, paid_cents, refunded_cents,
    carrier, tracking_number, cancel_reason, and one ``refunds.<id>`` or
    ``disputes.<id>`` per refund or dispute) are last-write-wins by position.
    What was refunded and disputed is derived from them: ``money_of``."""

    kind = "order"
    transitions = ORDER_TRANSITIONS
    status_of = ORDER_STATUS_OF

    @event("Tracked")
    def __init__(
        self,
        object_id: str,
        source: str = "",
        key: str = "",
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self._start(object_id, namespace)

    @staticmethod
    def money_of(values: Mapping[str, Any]) -> Money:
        """The refunded and disputed amounts of an order whose fields are
        ``values`` (the aggregate's, or the money fields a projection keeps).

        Refunded: the larger of the last total stated by ``order.refunded``
        (the ``refunded_cents`` field) and the sum of the refunds by id. A
        stated total covers every refund the partner knew of when it said
        it, so it is at least the refunds known here so far, and a refund
        that is also in the set must not be added to it a second time; the
        set counts each refund once, by its id, and is what grows when
        refunds arrive one by one. Disputed: the sum of the lost disputes.
        """
        stated = values.get("refunded_cents")
        refunds = [
            amount for name, amount in values.items() if name.startswith(REFUNDS)
        ]
        refunded = None
        if stated is not None or refunds:
            refunded = max(stated or 0, sum(refunds))
        disputed = sum(
            dispute["amount_cents"]
            for name, dispute in values.items()
            if name.startswith(DISPUTES) and dispute["lost"]
        )
        return Money(refunded, disputed)

    @property
    def money(self) -> Money:
        """This order's refunded and disputed amounts (``money_of``)."""
        return self.money_of(self.values)

    class Created(SyncedObject.Changed):
        """The partner created the order."""

    class Paid(SyncedObject.Changed):
        """The order was paid (``paid_cents`` is the amount paid in total)."""

    class Shipped(SyncedObject.Changed):
        """The order was handed to a carrier."""

    class Delivered(SyncedObject.Changed):
        """The order reached the customer."""

    class Cancelled(SyncedObject.Changed):
        """The order was cancelled."""

    class Refunded(SyncedObject.Changed):
        """Money went back (``refunded_cents`` is the refunded total)."""

    class RefundRecorded(SyncedObject.Changed):
        """One refund, by the partner's id, was recorded or updated
        (``refunds.<id>`` is its amount); the status is left alone."""

    class DisputeClosed(SyncedObject.Changed):
        """A dispute, by the partner's id, was closed (``disputes.<id>`` is
        its amount and whether it was lost); the status is left alone."""

    event_names = MappingProxyType(
        {
            "order.created": "Created",
            "order.paid": "Paid",
            "order.shipped": "Shipped",
            "order.delivered": "Delivered",
            "order.cancelled": "Cancelled",
            "order.refunded": "Refunded",
            "order.refund_recorded": "RefundRecorded",
            "order.dispute_closed": "DisputeClosed",
        }
    )
