"""Hypothesis strategies of valid histories and the schedules a partner may
deliver them in (specification §5, invariant 4).

A *valid history* is generated in source order: one order along a random path
of its lifecycle graph (with repeated same-status events), one customer with a
few upserts and maybe a deletion; every event has a unique key and positions
increase. A *schedule* is any permutation of its deliveries with duplicates
(same key, same body) inserted anywhere, and, with ``schedules_with_re_sends``,
re-sends of any delivery under fresh keys.

The commands carry ``ORDER_ID`` and ``CUSTOMER_ID``; a test on a store shared
by many examples gives each example ids of its own. ``tests/histories.py``
makes larger seeded histories, as envelopes, for the chaos and e2e tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from domain.commands import (
    CUSTOMER_FIELDS,
    CancelOrder,
    Command,
    CreateOrder,
    DeleteCustomer,
    MarkDelivered,
    MarkPaid,
    MarkShipped,
    RefundOrder,
    UpsertCustomer,
)
from domain.delivery import Delivery
from domain.rules import ORDER_LIFECYCLE, RANK

SOURCE = "acme"
ORDER_ID = "ord-1"
CUSTOMER_ID = "cus-1"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Sent:
    """One delivery of the history: its key and the command it maps to."""

    key: str
    command: Command

    def delivery(self) -> Delivery:
        body = json.dumps(self.command.to_dict(), sort_keys=True).encode()
        return Delivery(SOURCE, self.key, T0, body, {})


History = tuple[Sent, ...]
"""Deliveries in source order: each valid, each key once."""
Schedule = tuple[Sent, ...]
"""Deliveries in the order a partner sends them."""


class Clock:
    """Positions that increase along one object's history: strictly, or, for
    timestamps, equal when the lifecycle rank breaks the tie."""

    def __init__(self, by_sequence: bool, start: int) -> None:
        self.by_sequence = by_sequence
        self.value = start
        self.last_rank: int | None = None

    def tick(self, draw: st.DrawFn, event_type: str) -> dict[str, Any]:
        rank = RANK[event_type]
        may_tie = (
            not self.by_sequence
            and self.last_rank is not None
            and rank > self.last_rank
        )
        if self.last_rank is not None:
            self.value += draw(st.integers(0 if may_tie else 1, 3))
        self.last_rank = rank
        if self.by_sequence:
            # The sequence orders; the timestamp says nothing (may go backwards).
            moment = T0 + timedelta(seconds=draw(st.integers(0, 100)))
            return {"sequence": self.value, "occurred_at": moment}
        return {
            "sequence": None,
            "occurred_at": T0 + timedelta(microseconds=self.value),
        }


cents = st.integers(0, 10**6)
words = st.text("abcxyz", min_size=1, max_size=4)


def order_event(draw: st.DrawFn, status: str, at: dict[str, Any]) -> Command:
    common = {"order_id": ORDER_ID, **at}
    if status == "created":
        return CreateOrder(
            customer_id=draw(st.sampled_from(["cus-1", "cus-2"])),
            currency=draw(st.sampled_from(["EUR", "USD"])),
            total_cents=draw(cents),
            **common,
        )
    if status == "paid":
        return MarkPaid(amount_cents=draw(cents), **common)
    if status == "shipped":
        return MarkShipped(carrier=draw(words), tracking_number=draw(words), **common)
    if status == "delivered":
        return MarkDelivered(**common)
    if status == "cancelled":
        return CancelOrder(reason=draw(st.none() | words), **common)
    assert status == "refunded"
    return RefundOrder(amount_cents=draw(cents), **common)


@st.composite
def histories(draw: st.DrawFn) -> History:
    by_sequence = draw(st.booleans())
    order_clock = Clock(by_sequence, draw(st.integers(0, 5)))
    commands: list[Command] = []

    status = "created"
    commands.append(order_event(draw, status, order_clock.tick(draw, "order.created")))
    for _ in range(draw(st.integers(0, 7))):
        # A direct successor, or the same status again.
        status = draw(st.sampled_from([status, *ORDER_LIFECYCLE[status]]))
        event_type = f"order.{status}"
        commands.append(order_event(draw, status, order_clock.tick(draw, event_type)))

    customer_clock = Clock(by_sequence, draw(st.integers(0, 5)))
    customer_fields = st.dictionaries(
        st.sampled_from(CUSTOMER_FIELDS), st.none() | words, max_size=4
    )
    for _ in range(draw(st.integers(1, 4))):
        at = customer_clock.tick(draw, "customer.upserted")
        commands.append(
            UpsertCustomer(customer_id=CUSTOMER_ID, fields=draw(customer_fields), **at)
        )
    if draw(st.booleans()):
        at = customer_clock.tick(draw, "customer.deleted")
        commands.append(DeleteCustomer(customer_id=CUSTOMER_ID, **at))

    # Interleave the two objects' events, keeping each object's own order.
    order_events = [c for c in commands if c.aggregate == "order"]
    customer_events = [c for c in commands if c.aggregate == "customer"]
    merged: list[Command] = []
    while order_events or customer_events:
        pick_order = bool(order_events) and (not customer_events or draw(st.booleans()))
        merged.append((order_events if pick_order else customer_events).pop(0))
    return tuple(Sent(f"evt-{i:03d}", command) for i, command in enumerate(merged))


@st.composite
def histories_and_schedules(draw: st.DrawFn) -> tuple[History, Schedule]:
    history = draw(histories())
    copies = draw(st.lists(st.sampled_from(history), max_size=len(history)))
    schedule = draw(st.permutations([*history, *copies]))
    return history, tuple(schedule)


@st.composite
def schedules_with_re_sends(draw: st.DrawFn) -> tuple[History, Schedule]:
    """A history and a schedule of it with duplicates, reorderings, and
    re-sends of any delivery under fresh keys (a partner sending one event
    twice, or anyone replaying a captured body), each of which may be
    retried under its own key too."""
    history, schedule = draw(histories_and_schedules())
    originals = draw(st.lists(st.sampled_from(history), max_size=len(history)))
    re_sent = [
        Sent(f"{sent.key}-again-{n}", sent.command) for n, sent in enumerate(originals)
    ]
    retried = (
        draw(st.lists(st.sampled_from(re_sent), max_size=len(re_sent)))
        if re_sent
        else []
    )
    return history, tuple(draw(st.permutations([*schedule, *re_sent, *retried])))


def latest_amount(history: History, event_type: str) -> int | None:
    """The amount of the latest (by position) event of ``event_type``."""
    matching = [s for s in history if s.command.type == event_type]
    if not matching:
        return None
    latest = max(matching, key=lambda s: s.command.position())
    assert isinstance(latest.command, MarkPaid | RefundOrder)
    return latest.command.amount_cents
