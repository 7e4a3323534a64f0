"""The order aggregate: one partner order, from creation to refund."""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import event

from domain.commands import Command
from domain.objects import NAMESPACE, SyncedObject
from domain.rules import ORDER_STATUS_OF, ORDER_TRANSITIONS, Position


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
    def __init__(self, object_id: str) -> None:
        self._start(object_id)

    def record(
        self,
        command: Command,
        changes: dict[str, Any],
        position: Position,
        source: str,
        key: str,
    ) -> None:
        trigger = {
            "order.created": self._created,
            "order.paid": self._paid,
            "order.shipped": self._shipped,
            "order.delivered": self._delivered,
            "order.cancelled": self._cancelled,
            "order.refunded": self._refunded,
        }[command.type]
        trigger(
            changes=changes,
            position=list(position),
            source=source,
            key=key,
            occurred_at=command.occurred_at.isoformat(),
        )

    @event("Created")
    def _created(
        self,
        changes: dict[str, Any],
        position: list[Any],
        source: str,
        key: str,
        occurred_at: str,
    ) -> None:
        self._apply(changes, position)

    @event("Paid")
    def _paid(
        self,
        changes: dict[str, Any],
        position: list[Any],
        source: str,
        key: str,
        occurred_at: str,
    ) -> None:
        self._apply(changes, position)

    @event("Shipped")
    def _shipped(
        self,
        changes: dict[str, Any],
        position: list[Any],
        source: str,
        key: str,
        occurred_at: str,
    ) -> None:
        self._apply(changes, position)

    @event("Delivered")
    def _delivered(
        self,
        changes: dict[str, Any],
        position: list[Any],
        source: str,
        key: str,
        occurred_at: str,
    ) -> None:
        self._apply(changes, position)

    @event("Cancelled")
    def _cancelled(
        self,
        changes: dict[str, Any],
        position: list[Any],
        source: str,
        key: str,
        occurred_at: str,
    ) -> None:
        self._apply(changes, position)

    @event("Refunded")
    def _refunded(
        self,
        changes: dict[str, Any],
        position: list[Any],
        source: str,
        key: str,
        occurred_at: str,
    ) -> None:
        self._apply(changes, position)
