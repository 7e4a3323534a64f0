"""A partner's payment, as far as it names an order.

Stripe's refunds, disputes and PaymentIntent events name their PaymentIntent,
and name the order only where the integration put ``metadata.order_id`` on
them. A completed Checkout Session names both: it links the payment to its
order. An order event that only knows its payment waits on the payment
(``Parked``) until the link is known, then goes on to the order, keeping its
own delivery's source and key.
"""

from __future__ import annotations

from types import MappingProxyType

from eventsourcing.domain import event

from domain.commands import Command
from domain.delivery import Resolution
from domain.namespaces import DEFAULT_NAMESPACE
from domain.objects import SyncedObject
from domain.rules import PAYMENT_STATUS_OF, PAYMENT_TRANSITIONS


class Payment(SyncedObject):
    """A payment (``payment_id``: a Stripe PaymentIntent id) and the order it
    was linked to (``order_id``, last-write-wins by position)."""

    kind = "payment"
    transitions = PAYMENT_TRANSITIONS
    status_of = PAYMENT_STATUS_OF

    @event("Tracked")
    def __init__(
        self,
        object_id: str,
        source: str = "",
        key: str = "",
        namespace: str = DEFAULT_NAMESPACE,
    ) -> None:
        self._start(object_id, namespace)

    class Linked(SyncedObject.Changed):
        """The payment was linked to an order."""

    event_names = MappingProxyType({"payment.linked": "Linked"})

    @property
    def order_id(self) -> str | None:
        """The order this payment was linked to; None until it is."""
        linked = self.values.get("order_id")
        return str(linked) if linked else None

    def forwarded(self) -> list[tuple[Command, str, str]]:
        """The commands released by the link, for the order (each with its
        delivery's source and key), in position order; taken once."""
        waiting = getattr(self, "_forwarded", [])
        self._forwarded: list[tuple[Command, str, str]] = []
        return waiting

    def _release_parked(self, source: str, key: str) -> list[Resolution]:
        """The parked commands are the order's, not this payment's: they leave
        with ``Released`` and wait in ``forwarded`` for the service to decide
        them on the order, in the same unit of work."""
        if not self.parked:
            return []
        waiting = sorted(
            self.parked, key=lambda p: Command.from_dict(p["command"]).position()
        )
        self._released(keys=[p["key"] for p in waiting], source=source, key=key)
        self._forwarded = [
            (Command.from_dict(p["command"]), p["source"], p["key"]) for p in waiting
        ]
        return []
