"""Generated partner deliveries (Standard Webhooks ``standard`` mapping
bodies): an order's lifecycle and customer upserts, as the rebuild, audit
and ``--stored-events`` fills write them through the engine."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
CARRIERS = ("DHL", "UPS", "FedEx", "PostNL")


def envelope(type_: str, moment: datetime, **data: Any) -> bytes:
    return json.dumps(
        {"type": type_, "timestamp": moment.isoformat(), "data": data}
    ).encode()


def order_stream(rng: random.Random, order_id: str, customer_id: str) -> list[bytes]:
    """An order's deliveries in source order: created, paid, then shipped
    and delivered, or cancelled and refunded."""
    total = rng.randint(5, 500) * 100
    moment = START + timedelta(seconds=rng.randint(0, 86_400))
    stream = [
        envelope(
            "order.created",
            moment,
            order_id=order_id,
            customer_id=customer_id,
            currency=rng.choice(CURRENCIES),
            total_cents=total,
            sequence=1,
        ),
        envelope(
            "order.paid", moment, order_id=order_id, amount_cents=total, sequence=2
        ),
    ]
    if rng.random() < 0.8:
        stream += [
            envelope(
                "order.shipped",
                moment,
                order_id=order_id,
                carrier=rng.choice(CARRIERS),
                tracking_number=f"TRK{rng.randint(10**9, 10**10 - 1)}",
                sequence=3,
            ),
            envelope("order.delivered", moment, order_id=order_id, sequence=4),
        ]
    else:
        stream += [
            envelope("order.cancelled", moment, order_id=order_id, sequence=3),
            envelope(
                "order.refunded",
                moment,
                order_id=order_id,
                amount_cents=total,
                sequence=4,
            ),
        ]
    return stream


def customer_upsert(rng: random.Random, customer_id: str, sequence: int) -> bytes:
    return envelope(
        "customer.upserted",
        START + timedelta(seconds=sequence),
        customer_id=customer_id,
        name=f"Customer {customer_id[-4:]}",
        email=f"{customer_id}@example.com",
        sequence=sequence,
    )
