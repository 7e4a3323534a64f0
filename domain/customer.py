"""The customer aggregate: a partner's customer, until it is deleted."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from eventsourcing.domain import event

from domain.commands import CUSTOMER_FIELDS, Command, DeleteCustomer
from domain.errors import AlreadyErased, NothingNewer
from domain.namespaces import DEFAULT_NAMESPACE
from domain.objects import SyncedObject
from domain.rules import CUSTOMER_STATUS_OF, CUSTOMER_TRANSITIONS, Position, Verdict


class Customer(SyncedObject):
    """A customer. Fields (email, name, phone, address) are last-write-wins by
    position. Deletion clears them at the deletion's position, so that older
    updates are stale and newer ones rejected (``CUSTOMER_TRANSITIONS``).
    An erasure (the data subject's request) deletes the customer too, and
    its personal fields can no longer be read (``domain.personal``)."""

    kind = "customer"
    transitions = CUSTOMER_TRANSITIONS
    status_of = CUSTOMER_STATUS_OF

    class_version = 4
    """Version 4: ``erased``; False for customers snapshotted before."""

    @staticmethod
    def upcast_v3_v4(state: dict[str, Any]) -> None:
        state["erased"] = False

    @event("Tracked")
    def __init__(
        self,
        object_id: str,
        source: str = "",
        key: str = "",
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self._start(object_id, namespace)
        self.erased = False

    def check_changes(
        self, command: Command, verdict: Verdict, position: Position
    ) -> dict[str, Any]:
        changes = super().check_changes(command, verdict, position)
        if isinstance(command, DeleteCustomer) and "status" not in changes:
            raise NothingNewer(
                f"customer {self.object_id} changed after this deletion was sent"
            )
        return changes

    def erase(self, by: str, reason: str) -> None:
        """Erase the customer's personal data at the request of the person
        (``by``: who carried it out, ``reason``: why, e.g. the request's
        reference). The customer is deleted and its fields cleared at the
        newest position it knows, so that a re-sent older update is stale and
        a newer one rejected: nothing a partner sends brings the data back.
        The event names who and why, never a value."""
        if self.erased:
            raise AlreadyErased(f"customer {self.object_id} was erased already")
        newest = max(self.positions.values(), default=None)
        self._erased(
            object_id=self.object_id,
            namespace=self.namespace,
            changes={"status": "deleted", **dict.fromkeys(CUSTOMER_FIELDS)},
            position=None if newest is None else list(newest),
            by=by,
            reason=reason,
        )

    @event("Erased")
    def _erased(
        self,
        object_id: str,
        namespace: str,
        changes: dict[str, Any],
        position: list[Any] | None,
        by: str,
        reason: str,
    ) -> None:
        """``changes`` as a ``Changed`` event has them (the projections read
        them alike); without a ``position`` (a customer never heard of) the
        status is set with none, so that anything later is rejected."""
        self.erased = True
        if position is not None:
            self._apply(changes, position)
            return
        self.status = changes["status"]
        self.values.update((k, v) for k, v in changes.items() if k != "status")

    class Upserted(SyncedObject.Changed):
        """The partner created or updated the customer."""

    class Deleted(SyncedObject.Changed):
        """The customer was deleted; the personal fields are cleared."""

    event_names = MappingProxyType(
        {"customer.upserted": "Upserted", "customer.deleted": "Deleted"}
    )
