"""Seeded valid histories of a partner's objects, their in-order outcome and
shuffled delivery schedules (specification §5, invariant 4).

A *valid history* is valid in source order: applied in position order,
every event is ``applied``. ``history`` makes one, ``ground_truth`` is what
in-order delivery ends in, and ``schedule`` is one way a partner may deliver
it (any order, with retries of the same key and bytes).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.application import SyncService
from domain.delivery import Delivery, Outcome
from domain.rules import ORDER_LIFECYCLE
from infrastructure.mappings.standard import map_standard

SOURCE = "acme"
MEMORY_ENV = {"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

CURRENCIES = ("EUR", "USD", "GBP", "CHF")
CARRIERS = ("DHL", "UPS", "FedEx", "La Poste", "PostNL")
CANCEL_REASONS = ("customer_request", "out_of_stock", "payment_failed", "fraud")
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson")
CITIES = ("Lyon", "Berlin", "Leeds", "Zurich", "Porto", "Ghent")

ObjectKey = tuple[str, str]
"""(kind, object id): ``("order", "ord_...")`` or ``("customer", "cus_...")``."""


@dataclass(frozen=True)
class Event:
    """One delivery of the history: its idempotency key and envelope bytes."""

    key: str
    body: bytes = field(repr=False)
    type: str
    kind: str
    object_id: str
    sequence: int

    @property
    def object(self) -> ObjectKey:
        return (self.kind, self.object_id)


def history(seed: int, orders: int = 10, customers: int = 5) -> list[Event]:
    """A valid history in source order: each object's events with strictly
    increasing ``data.sequence``, the objects' streams randomly interleaved,
    envelope timestamps increasing in source order."""
    rng = random.Random(seed)
    customer_ids = [f"cus_{rng.getrandbits(32):08x}" for _ in range(customers)]
    streams: list[list[tuple[str, str, dict[str, Any]]]] = [
        _customer_stream(rng, customer_id) for customer_id in customer_ids
    ]
    for _ in range(orders):
        order_id = f"ord_{rng.getrandbits(32):08x}"
        customer_id = rng.choice(customer_ids) if customer_ids else "cus_guest"
        streams.append(_order_stream(rng, order_id, customer_id))

    events: list[Event] = []
    moment = START
    cursors = [0] * len(streams)
    sequences = [0] * len(streams)
    while True:
        open_streams = [i for i, s in enumerate(streams) if cursors[i] < len(s)]
        if not open_streams:
            return events
        index = rng.choice(open_streams)
        type_, kind, data = streams[index][cursors[index]]
        cursors[index] += 1
        sequences[index] += rng.randint(1, 3)
        moment += timedelta(
            seconds=rng.randint(1, 90), microseconds=rng.randint(0, 999)
        )
        envelope = {
            "type": type_,
            "timestamp": moment.isoformat(),
            "data": {**data, "sequence": sequences[index]},
        }
        object_id = data["order_id"] if kind == "order" else data["customer_id"]
        events.append(
            Event(
                key=f"msg_{rng.getrandbits(64):016x}",
                body=json.dumps(envelope).encode(),
                type=type_,
                kind=kind,
                object_id=object_id,
                sequence=sequences[index],
            )
        )


def _order_stream(
    rng: random.Random, order_id: str, customer_id: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """A random walk along the lifecycle, one direct successor at a time,
    stopping anywhere. A refund needs a payment (refunding an unpaid
    cancelled order is not realistic), so an unpaid cancelled order stops."""
    total = rng.randint(5, 500) * 100 - rng.choice((0, 1, 5, 10))
    stream: list[tuple[str, str, dict[str, Any]]] = [
        (
            "order.created",
            "order",
            {
                "order_id": order_id,
                "customer_id": customer_id,
                "currency": rng.choice(CURRENCIES),
                "total_cents": total,
            },
        )
    ]
    status, paid = "created", False
    while rng.random() < 0.85:
        successors = [s for s in ORDER_LIFECYCLE[status] if s != "refunded" or paid]
        if not successors:
            break
        status = rng.choice(successors)
        data: dict[str, Any] = {"order_id": order_id}
        if status == "paid":
            paid = True
            data["amount_cents"] = total
        elif status == "shipped":
            data["carrier"] = rng.choice(CARRIERS)
            data["tracking_number"] = f"TRK{rng.randint(10**9, 10**10 - 1)}"
        elif status == "cancelled":
            data["reason"] = rng.choice(CANCEL_REASONS)
        elif status == "refunded":
            data["amount_cents"] = rng.choice(
                (total, total // 2, rng.randint(1, total))
            )
        stream.append((f"order.{status}", "order", data))
    return stream


def _customer_stream(
    rng: random.Random, customer_id: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """One to five upserts of random non-empty subsets of the personal
    fields (the first one names the customer), sometimes a final deletion."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)

    def value(name: str) -> Any:
        if name == "email":
            domain = rng.choice(("example.com", "example.org", "mail.test"))
            return f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@{domain}"
        if name == "name":
            return f"{first} {last}"
        if name == "phone":
            return f"+33 6 {rng.randint(10, 99)} {rng.randint(10, 99)} " + str(
                rng.randint(1000, 9999)
            )
        return {
            "line1": f"{rng.randint(1, 200)} {rng.choice(LAST_NAMES)} Street",
            "city": rng.choice(CITIES),
            "postal_code": f"{rng.randint(10000, 99999)}",
        }

    fields = ("email", "name", "phone", "address")
    stream: list[tuple[str, str, dict[str, Any]]] = []
    for number in range(rng.randint(1, 5)):
        chosen = rng.sample(fields, rng.randint(1, len(fields)))
        if number == 0 and "name" not in chosen:
            chosen.append("name")
        data = {"customer_id": customer_id, **{name: value(name) for name in chosen}}
        stream.append(("customer.upserted", "customer", data))
    if rng.random() < 0.3:
        stream.append(("customer.deleted", "customer", {"customer_id": customer_id}))
    return stream


def ground_truth(events: list[Event]) -> dict[ObjectKey, dict[str, Any]]:
    """Every object's state after in-order delivery, through an in-memory
    ``SyncService`` and the ``standard`` mapping. Every event must be applied:
    otherwise ``events`` is not a valid history."""
    service = SyncService(env=MEMORY_ENV)
    try:
        for number, event in enumerate(events):
            delivery = Delivery(
                source=SOURCE,
                key=event.key,
                received_at=START + timedelta(seconds=number),
                payload=event.body,
            )
            answer = service.receive(delivery, map_standard(event.body, {}))
            assert answer.outcome is Outcome.APPLIED, (
                f"not a valid history: {event.type} {event.object_id} "
                f"#{event.sequence} was {answer.outcome.value}: {answer.reason}"
            )
        truth = {}
        for kind, object_id in dict.fromkeys(event.object for event in events):
            state = service.state_of(kind, object_id)
            assert state is not None
            truth[(kind, object_id)] = state
        return truth
    finally:
        service.close()


def schedule(
    events: list[Event], seed: int, duplicate_ratio: float = 0.3
) -> list[Event]:
    """A partner's delivery order: every event once, plus
    ``round(len(events) * duplicate_ratio)`` retries of random events (same
    key, same bytes), all shuffled."""
    rng = random.Random(seed)
    retries = [rng.choice(events) for _ in range(round(len(events) * duplicate_ratio))]
    order = [*events, *retries]
    rng.shuffle(order)
    return order
