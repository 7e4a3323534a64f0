"""Where an event came from: the object it belongs to and the delivery that
caused it. The recorder stores it beside each event (the audit ledger), so a
history reads as a story and a delivery links to the events it caused."""

from __future__ import annotations

from dataclasses import dataclass

from domain.namespaces import DEFAULT_NAMESPACE


@dataclass(frozen=True)
class Provenance:
    """``aggregate_type``/``aggregate_id``: the object as the partner names it
    (``order``/``ord_1``; a delivery's receipt is ``delivery``/``source/key``).
    ``source``/``key``: the delivery that caused the event. ``occurred_at``:
    the source's own time for it (ISO 8601), where the event has one.
    ``namespace``: the object's (``DEFAULT_NAMESPACE`` for
    receipts and for everything recorded before namespaces)."""

    aggregate_type: str
    aggregate_id: str
    source: str | None = None
    key: str | None = None
    occurred_at: str | None = None
    namespace: str = DEFAULT_NAMESPACE
