"""The customer aggregate: a partner's customer, until it is deleted."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from eventsourcing.domain import event

from domain.commands import Command, DeleteCustomer
from domain.errors import NothingNewer
from domain.namespaces import DEFAULT_NAMESPACE
from domain.objects import SyncedObject
from domain.rules import CUSTOMER_STATUS_OF, CUSTOMER_TRANSITIONS, Position, Verdict


class Customer(SyncedObject):
    """A customer. Fields (email, name, phone, address) are last-write-wins by
    position. Deletion clears them at the deletion's position, so that older
    updates are stale and newer ones rejected (``CUSTOMER_TRANSITIONS``)."""

    kind = "customer"
    transitions = CUSTOMER_TRANSITIONS
    status_of = CUSTOMER_STATUS_OF

    @event("Tracked")
    def __init__(
        self,
        object_id: str,
        source: str = "",
        key: str = "",
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self._start(object_id, namespace)

    def check_changes(
        self, command: Command, verdict: Verdict, position: Position
    ) -> dict[str, Any]:
        changes = super().check_changes(command, verdict, position)
        if isinstance(command, DeleteCustomer) and "status" not in changes:
            raise NothingNewer(
                f"customer {self.object_id} changed after this deletion was sent"
            )
        return changes

    class Upserted(SyncedObject.Changed):
        """The partner created or updated the customer."""

    class Deleted(SyncedObject.Changed):
        """The customer was deleted; the personal fields are cleared."""

    event_names = MappingProxyType(
        {"customer.upserted": "Upserted", "customer.deleted": "Deleted"}
    )
