"""The order aggregate: one partner order, from creation to refund."""

from __future__ import annotations

import uuid
from types import MappingProxyType

from eventsourcing.domain import event

from domain.objects import NAMESPACE, SyncedObject
from domain.rules import ORDER_STATUS_OF, ORDER_TRANSITIONS


class Order(SyncedObject):
    """An order. Its status follows ``domain.rules.ORDER_TRANSITIONS``; its
    fields (customer_id, currency, total_cents, paid_cents, refunded_cents,
    carrier, tracking_number, cancel_reason) are last-write-wins by position."""

    kind = "order"
    transitions = ORDER_TRANSITIONS
    status_of = ORDER_STATUS_OF

    @staticmethod
    def create_id(object_id: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"order/{object_id}")

    @event("Tracked")
    def __init__(self, object_id: str, source: str = "", key: str = "") -> None:
        self._start(object_id)

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

    event_names = MappingProxyType(
        {
            "order.created": "Created",
            "order.paid": "Paid",
            "order.shipped": "Shipped",
            "order.delivered": "Delivered",
            "order.cancelled": "Cancelled",
            "order.refunded": "Refunded",
        }
    )
