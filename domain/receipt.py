"""The receipt of a delivery: its first answer, kept in the event log.

The delivery log (``deliveries``) answers retries quickly and holds the raw
payload, but it is pruned after ``retention_days``. The receipt is not: it is
what a rebuilt projection counts (``source_stats``), what answers a retry that
arrives after its record was pruned, and, being created with a ``uuid5`` of
the source and key, a second guard against deciding a delivery twice.
"""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.namespaces import NAMESPACE
from domain.provenance import Provenance


class Receipt(Aggregate):
    """One delivery, as decided: ``Issued`` with its first answer, then
    ``Resolved`` when a parked delivery is released or a replay changes what
    it did, or ``Discarded`` when an operator drops a parked one."""

    @staticmethod
    def create_id(source: str, key: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, f"delivery/{source}/{key}")

    @event("Issued")
    def __init__(
        self,
        source: str,
        key: str,
        outcome: str,
        reason: str | None,
        answer: dict[str, Any],
        received_at: str,
    ) -> None:
        self.source = source
        self.key = key
        self.outcome = outcome
        self.reason = reason
        self.answer = answer
        self.received_at = received_at
        self.resolution: str | None = None
        self.discarded_by: str | None = None

    def provenance(self, event: object) -> Provenance:
        """Every event of a receipt belongs to its own delivery."""
        return Provenance(
            "delivery", f"{self.source}/{self.key}", self.source, self.key
        )

    @event("Resolved")
    def resolve(self, outcome: str, reason: str | None) -> None:
        self.resolution = outcome
        self.reason = reason

    @event("Discarded")
    def discard(self, outcome: str, reason: str, by: str) -> None:
        """An operator (``by``) discarded the parked delivery: resolved as
        ``outcome`` for good (a replay leaves it alone)."""
        self.resolution = outcome
        self.reason = reason
        self.discarded_by = by
