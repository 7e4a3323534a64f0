"""Convergence (contract section 5, invariant 4), as properties.

A *valid history* is generated in source order: one order along a random path
of its lifecycle graph (with repeated same-status events), one customer with a
few upserts and maybe a deletion; every event has a unique key and positions
increase. A *schedule* is any permutation of its deliveries with duplicates
(same key, same body) inserted anywhere. Every schedule must end where
in-order delivery ends, count every key once, and never count money twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.application import AGGREGATES, SyncService
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
from domain.delivery import Answer, Delivery, Outcome
from domain.errors import AlreadyParked, NothingNewer, NotYetCreated
from domain.rules import ORDER_LIFECYCLE, RANK
from infrastructure.persistence.memory import MemoryDeliveryRecorder

SOURCE = "acme"
ORDER_ID = "ord-1"
CUSTOMER_ID = "cus-1"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
MEMORY = {"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}


@dataclass(frozen=True)
class Sent:
    """One delivery of the history: its key and the command it maps to."""

    key: str
    command: Command

    def delivery(self) -> Delivery:
        body = json.dumps(self.command.to_dict(), sort_keys=True).encode()
        return Delivery(SOURCE, self.key, T0, body, {})


# -- strategies ----------------------------------------------------------------------


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
def histories(draw: st.DrawFn) -> tuple[Sent, ...]:
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
def histories_and_schedules(
    draw: st.DrawFn,
) -> tuple[tuple[Sent, ...], tuple[Sent, ...]]:
    history = draw(histories())
    copies = draw(st.lists(st.sampled_from(history), max_size=len(history)))
    schedule = draw(st.permutations([*history, *copies]))
    return history, tuple(schedule)


# -- helpers ---------------------------------------------------------------------------


def fresh_service() -> SyncService:
    return SyncService(env=MEMORY)


def final_states(service: SyncService) -> tuple[Any, Any]:
    return service.state_of("order", ORDER_ID), service.state_of(
        "customer", CUSTOMER_ID
    )


def in_order(history: tuple[Sent, ...]) -> tuple[Any, Any]:
    """Deliver the history in source order; it must be valid: all applied."""
    service = fresh_service()
    for sent in history:
        answer = service.receive(sent.delivery(), [sent.command])
        assert answer.outcome is Outcome.APPLIED, (sent, answer)
    order, customer = final_states(service)
    assert order is not None and order["parked"] == []
    assert customer is not None and customer["parked"] == []
    return order, customer


def latest_amount(history: tuple[Sent, ...], event_type: str) -> int | None:
    """The amount of the latest (by position) event of ``event_type``."""
    matching = [s for s in history if s.command.type == event_type]
    if not matching:
        return None
    latest = max(matching, key=lambda s: s.command.position())
    assert isinstance(latest.command, MarkPaid | RefundOrder)
    return latest.command.amount_cents


PROPERTY = settings(max_examples=200, deadline=None)


# -- properties -----------------------------------------------------------------------


@PROPERTY
@given(histories_and_schedules())
def test_any_schedule_of_duplicates_and_reorderings_ends_where_in_order_delivery_ends(
    case: tuple[tuple[Sent, ...], tuple[Sent, ...]],
) -> None:
    history, schedule = case
    expected = in_order(history)

    service = fresh_service()
    answers: dict[str, list[Answer]] = {}
    for sent in schedule:
        answer = service.receive(sent.delivery(), [sent.command])
        answers.setdefault(sent.key, []).append(answer)

    assert final_states(service) == expected
    assert set(answers) == {sent.key for sent in history}
    for key, given_answers in answers.items():
        first, *retries = given_answers
        assert first.outcome is not Outcome.DUPLICATE, key
        assert first.outcome is not Outcome.REJECTED, (key, first)
        for retry in retries:
            assert retry.outcome is Outcome.DUPLICATE
            assert retry.first == first.to_json()
    recorder = cast(MemoryDeliveryRecorder, service.recorder)
    assert all(r.outcome is not Outcome.REJECTED for r in recorder.resolutions.values())


@PROPERTY
@given(histories_and_schedules())
def test_a_re_sent_event_whose_key_was_forgotten_changes_nothing(
    case: tuple[tuple[Sent, ...], tuple[Sent, ...]],
) -> None:
    history, schedule = case
    expected = in_order(history)

    service = fresh_service()
    seen: set[str] = set()
    for sent in schedule:
        if sent.key not in seen:
            seen.add(sent.key)
            decision = service.decide(sent.delivery(), [sent.command])
            assert decision.answer.outcome is not Outcome.REJECTED
            service.commit([decision])
            continue
        # Second layer: the delivery log is not asked; the state alone decides.
        decision = service.decide(sent.delivery(), [sent.command])
        # Nothing but the receipt of this (second) delivery would be written.
        assert [type(a).__name__ for a in decision.aggregates] == ["Receipt"]
        command = sent.command
        obj = service.load(AGGREGATES[command.aggregate], command.object_id)
        if obj.exists:
            assert decision.answer.outcome is Outcome.STALE
            with pytest.raises(NothingNewer):
                obj.execute(command, SOURCE, sent.key)
        else:
            assert decision.answer.outcome is Outcome.PARKED
            with pytest.raises(NotYetCreated):
                obj.execute(command, SOURCE, sent.key)
            with pytest.raises(AlreadyParked):
                obj.park(command, SOURCE, sent.key)
        assert obj.pending_events == []

    assert final_states(service) == expected


@PROPERTY
@given(histories_and_schedules())
def test_money_is_never_counted_twice(
    case: tuple[tuple[Sent, ...], tuple[Sent, ...]],
) -> None:
    history, schedule = case
    service = fresh_service()
    for sent in schedule:
        service.receive(sent.delivery(), [sent.command])

    order, _ = final_states(service)
    assert order is not None
    assert order["values"].get("paid_cents") == latest_amount(history, "order.paid")
    assert order["values"].get("refunded_cents") == latest_amount(
        history, "order.refunded"
    )


@st.composite
def schedules_with_re_sends(
    draw: st.DrawFn,
) -> tuple[tuple[Sent, ...], tuple[Sent, ...]]:
    """A history and a schedule of it with duplicates, reorderings, and
    re-sends of any delivery under fresh keys (a partner sending one event
    twice, or anyone replaying a captured body)."""
    history, schedule = draw(histories_and_schedules())
    originals = draw(st.lists(st.sampled_from(history), max_size=len(history)))
    re_sent = [
        Sent(f"{sent.key}-again-{n}", sent.command) for n, sent in enumerate(originals)
    ]
    return history, tuple(draw(st.permutations([*schedule, *re_sent])))


@PROPERTY
@given(schedules_with_re_sends())
def test_re_sends_under_fresh_keys_end_in_the_in_order_state_and_count_money_once(
    case: tuple[tuple[Sent, ...], tuple[Sent, ...]],
) -> None:
    history, schedule = case
    expected = in_order(history)

    service = fresh_service()
    firsts: dict[str, Answer] = {}
    for sent in schedule:
        answer = service.receive(sent.delivery(), [sent.command])
        firsts.setdefault(sent.key, answer)

    assert final_states(service) == expected
    order, _ = expected
    assert order["values"].get("paid_cents") == latest_amount(history, "order.paid")
    assert order["values"].get("refunded_cents") == latest_amount(
        history, "order.refunded"
    )
    # One event, however many keys carry it, is applied at most once; the
    # other copies are stale (or were parked and then released as stale).
    recorder = cast(MemoryDeliveryRecorder, service.recorder)
    for sent in history:
        keys = [k for k in firsts if k == sent.key or k.startswith(f"{sent.key}-")]
        applied = [
            k
            for k in keys
            if firsts[k].outcome is Outcome.APPLIED
            or (
                (SOURCE, k) in recorder.resolutions
                and recorder.resolutions[(SOURCE, k)].outcome is Outcome.APPLIED
            )
        ]
        assert len(applied) <= 1, (sent, applied)
        assert all(firsts[k].outcome is not Outcome.REJECTED for k in keys)
