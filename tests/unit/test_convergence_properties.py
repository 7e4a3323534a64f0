"""Convergence (specification §5, invariant 4), as properties.

A *valid history* is generated in source order: one order along a random path
of its lifecycle graph (with repeated same-status events), one customer with a
few upserts and maybe a deletion; every event has a unique key and positions
increase. A *schedule* is any permutation of its deliveries with duplicates
(same key, same body) inserted anywhere. Every schedule must end where
in-order delivery ends, count every key once, and never count money twice.
The strategies are in ``tests/history_strategies.py``.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given, settings

from domain.application import AGGREGATES, SyncService
from domain.delivery import Answer, Outcome
from domain.errors import AlreadyParked, NothingNewer, NotYetCreated
from infrastructure.persistence.memory import MemoryDeliveryRecorder
from tests.history_strategies import (
    CUSTOMER_ID,
    ORDER_ID,
    SOURCE,
    Sent,
    histories_and_schedules,
    latest_amount,
    schedules_with_re_sends,
)

MEMORY = {"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}


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
