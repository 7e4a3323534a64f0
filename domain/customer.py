"""The customer aggregate: a partner's customer, until it is deleted."""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import event

from domain.commands import Command, DeleteCustomer
from domain.errors import NothingNewer
from domain.objects import NAMESPACE, SyncedObject
from domain.rules import CUSTOMER_STATUS_OF, CUSTOMER_TRANSITIONS, Position, Verdict


class Customer(SyncedObject):
    """A customer. Fields (email, name, phone, address) are last-write-wins by
    position. Deletion clears them at the deletion's position, so that older
    updates are stale and newer ones rejected (``CUSTOMER_TRANSITIONS``)."""

    kind = "customer"
    transitions = CUSTOMER_TRANSITIONS
    status_of = CUSTOMER_STATUS_OF

    @staticmethod
    def create_id(object_id: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"customer/{object_id}")

    @event("Tracked")
    def __init__(self, object_id: str) -> None:
        self._start(object_id)

    def check_changes(
        self, command: Command, verdict: Verdict, position: Position
    ) -> dict[str, Any]:
        changes = super().check_changes(command, verdict, position)
        if isinstance(command, DeleteCustomer) and "status" not in changes:
            raise NothingNewer(
                f"customer {self.object_id} changed after this deletion was sent"
            )
        return changes

    def record(
        self,
        command: Command,
        changes: dict[str, Any],
        position: Position,
        source: str,
        key: str,
    ) -> None:
        trigger = (
            self._deleted if isinstance(command, DeleteCustomer) else self._upserted
        )
        trigger(
            changes=changes,
            position=list(position),
            source=source,
            key=key,
            occurred_at=command.occurred_at.isoformat(),
        )

    @event("Upserted")
    def _upserted(
        self,
        changes: dict[str, Any],
        position: list[Any],
        source: str,
        key: str,
        occurred_at: str,
    ) -> None:
        self._apply(changes, position)

    @event("Deleted")
    def _deleted(
        self,
        changes: dict[str, Any],
        position: list[Any],
        source: str,
        key: str,
        occurred_at: str,
    ) -> None:
        self._apply(changes, position)
