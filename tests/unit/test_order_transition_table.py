"""The order transition table, checked against the contract and cell by cell
(contract section 4, "Reference domain rules")."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.commands import (
    CancelOrder,
    Command,
    CreateOrder,
    MarkDelivered,
    MarkPaid,
    MarkShipped,
    RefundOrder,
)
from domain.errors import IllegalTransition, NothingNewer, NotYetCreated
from domain.order import Order
from domain.rules import (
    ORDER_EVENTS,
    ORDER_LIFECYCLE,
    ORDER_STATUS_OF,
    ORDER_TRANSITIONS,
    Verdict,
)

ORDER_ID = "ord-1"
SOURCE = "acme"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
STATUSES: list[str | None] = [None, *ORDER_LIFECYCLE]


# -- the contract's rule, computed independently ------------------------------


def reachable(graph: dict[str, tuple[str, ...]], start: str) -> set[str]:
    """Every status reachable from ``start`` by a path of length >= 1 (BFS)."""
    seen: set[str] = set()
    queue = deque(graph[start])
    while queue:
        status = queue.popleft()
        if status not in seen:
            seen.add(status)
            queue.extend(graph[status])
    return seen


def shortest_path(
    graph: dict[str, tuple[str, ...]], start: str, goal: str
) -> list[str]:
    """The statuses after ``start`` on a shortest path to ``goal`` (BFS)."""
    parents: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        status = queue.popleft()
        for following in graph[status]:
            if following not in parents:
                parents[following] = status
                queue.append(following)
    assert goal in parents, f"{goal} is not reachable from {start}"
    path: list[str] = []
    at: str | None = goal
    while at is not None and at != start:
        path.append(at)
        at = parents[at]
    return path[::-1]


def expected_verdict(status: str | None, event_type: str) -> Verdict:
    target = event_type.removeprefix("order.")
    if status is None:
        return Verdict.CREATE if event_type == "order.created" else Verdict.PARK
    if target == status:
        return Verdict.SAME
    if target in reachable(ORDER_LIFECYCLE, status):
        return Verdict.ADVANCE
    return Verdict.REJECT


# -- helpers ---------------------------------------------------------------------


COMMAND_CLASSES: dict[str, type[Command]] = {
    "order.created": CreateOrder,
    "order.paid": MarkPaid,
    "order.shipped": MarkShipped,
    "order.delivered": MarkDelivered,
    "order.cancelled": CancelOrder,
    "order.refunded": RefundOrder,
}


def order_command(event_type: str, step: int, /, **overrides: Any) -> Command:
    """A command of ``event_type`` whose values depend on ``step`` (its
    sequence, and its second after T0), so that a later command visibly
    overwrites an earlier one."""
    defaults: dict[str, dict[str, Any]] = {
        "order.created": {
            "customer_id": f"cus-{step}",
            "currency": "EUR",
            "total_cents": 1000 + step,
        },
        "order.paid": {"amount_cents": 1000 + step},
        "order.shipped": {
            "carrier": f"carrier-{step}",
            "tracking_number": f"TN{step}",
        },
        "order.delivered": {},
        "order.cancelled": {"reason": f"reason {step}"},
        "order.refunded": {"amount_cents": 100 + step},
    }
    arguments: dict[str, Any] = {
        "order_id": ORDER_ID,
        "occurred_at": T0 + timedelta(seconds=step),
        "sequence": step,
        **defaults[event_type],
        **overrides,
    }
    return COMMAND_CLASSES[event_type](**arguments)


def key_of(command: Command) -> str:
    return f"k-{command.sequence}-{command.type}"


def execute(order: Order, command: Command) -> None:
    order.execute(command, SOURCE, key_of(command))


def order_in(status: str | None) -> tuple[Order, int]:
    """A new order brought into ``status`` along the lifecycle; returns it with
    the last sequence used."""
    order = Order(ORDER_ID)
    if status is None:
        return order, 0
    execute(order, order_command("order.created", 1))
    sequence = 1
    for step in shortest_path(ORDER_LIFECYCLE, "created", status):
        sequence += 1
        execute(order, order_command(f"order.{step}", sequence))
    assert order.status == status
    return order, sequence


def assert_fields_won(order: Order, command: Command) -> None:
    position = command.position(key_of(command))
    for name, value in command.values().items():
        assert order.values[name] == value
        assert order.positions[name] == position


# -- (a) the table is the contract's rule ---------------------------------------


def test_the_table_has_a_row_per_status_and_a_column_per_event_type() -> None:
    assert set(ORDER_TRANSITIONS) == set(STATUSES)
    for row in ORDER_TRANSITIONS.values():
        assert tuple(row) == ORDER_EVENTS
    assert {ORDER_STATUS_OF[e] for e in ORDER_EVENTS} == set(ORDER_LIFECYCLE)
    for event_type in ORDER_EVENTS:
        assert ORDER_STATUS_OF[event_type] == event_type.removeprefix("order.")


@pytest.mark.parametrize("event_type", ORDER_EVENTS)
@pytest.mark.parametrize("status", STATUSES)
def test_each_cell_of_the_table_follows_the_lifecycle_graph(
    status: str | None, event_type: str
) -> None:
    assert ORDER_TRANSITIONS[status][event_type] is expected_verdict(status, event_type)


def test_the_lifecycle_graph_is_the_contracts() -> None:
    assert ORDER_LIFECYCLE == {
        "created": ("paid", "cancelled"),
        "paid": ("shipped", "cancelled", "refunded"),
        "shipped": ("delivered", "refunded"),
        "delivered": ("refunded",),
        "cancelled": ("refunded",),
        "refunded": (),
    }


# -- (b) the aggregate does what each cell says ----------------------------------


@pytest.mark.parametrize("event_type", ORDER_EVENTS)
@pytest.mark.parametrize("status", STATUSES)
def test_a_newer_event_does_what_its_cell_says(
    status: str | None, event_type: str
) -> None:
    order, last = order_in(status)
    before = order.state()
    pending_before = len(order.pending_events)
    command = order_command(event_type, last + 10)
    position = command.position(key_of(command))
    verdict = ORDER_TRANSITIONS[status][event_type]

    if verdict is Verdict.PARK:
        with pytest.raises(NotYetCreated):
            execute(order, command)
        assert len(order.pending_events) == pending_before
        assert order.state() == before
    elif verdict is Verdict.REJECT:
        with pytest.raises(IllegalTransition):
            execute(order, command)
        assert len(order.pending_events) == pending_before
        assert order.state() == before
    else:
        execute(order, command)
        assert len(order.pending_events) == pending_before + 1
        assert order.positions["status"] == position
        assert_fields_won(order, command)
        if verdict is Verdict.CREATE:
            assert order.status == "created"
        elif verdict is Verdict.ADVANCE:
            assert order.status == ORDER_STATUS_OF[event_type]
        else:
            assert verdict is Verdict.SAME
            assert order.status == status


# -- (c) the contract's named examples -------------------------------------------


def test_an_order_can_go_from_created_straight_to_shipped_skipping_paid() -> None:
    order, _ = order_in("created")
    execute(order, order_command("order.shipped", 2))
    assert order.status == "shipped"
    assert order.values["carrier"] == "carrier-2"
    assert "paid_cents" not in order.values


def test_an_order_can_go_from_created_straight_to_refunded() -> None:
    order, _ = order_in("created")
    execute(order, order_command("order.refunded", 2))
    assert order.status == "refunded"


def test_shipping_a_cancelled_order_is_rejected() -> None:
    order, last = order_in("cancelled")
    before = order.state()
    with pytest.raises(IllegalTransition) as refused:
        execute(order, order_command("order.shipped", last + 1))
    assert "cancelled" in refused.value.reason
    assert order.state() == before


def test_cancelling_a_shipped_order_is_rejected() -> None:
    order, last = order_in("shipped")
    before = order.state()
    with pytest.raises(IllegalTransition):
        execute(order, order_command("order.cancelled", last + 1))
    assert order.state() == before


@pytest.mark.parametrize(
    "event_type", [e for e in ORDER_EVENTS if e != "order.refunded"]
)
def test_anything_but_another_refund_after_refunded_is_rejected(
    event_type: str,
) -> None:
    order, last = order_in("refunded")
    before = order.state()
    with pytest.raises(IllegalTransition):
        execute(order, order_command(event_type, last + 1))
    assert order.state() == before


def test_a_second_newer_refund_after_refunded_replaces_the_refunded_amount() -> None:
    order, last = order_in("refunded")
    execute(order, order_command("order.refunded", last + 1, amount_cents=777))
    assert order.status == "refunded"
    assert order.values["refunded_cents"] == 777


def test_a_late_payment_after_shipping_records_paid_cents_but_keeps_the_status() -> (
    None
):
    order = Order(ORDER_ID)
    execute(order, order_command("order.created", 1))
    execute(order, order_command("order.shipped", 3))
    late = order_command("order.paid", 2, amount_cents=4200)
    execute(order, late)
    assert order.status == "shipped"
    assert order.positions["status"] == (
        3,
        2,
        key_of(order_command("order.shipped", 3)),
    )
    assert order.values["paid_cents"] == 4200
    assert order.positions["paid_cents"] == late.position(key_of(late))


def test_an_older_shipment_after_cancelling_is_not_rejected_and_keeps_its_fields() -> (
    None
):
    order = Order(ORDER_ID)
    execute(order, order_command("order.created", 1))
    execute(order, order_command("order.cancelled", 5))
    execute(order, order_command("order.shipped", 3))
    assert order.status == "cancelled"
    assert order.values["carrier"] == "carrier-3"


def test_an_older_command_that_wins_nothing_is_stale() -> None:
    order = Order(ORDER_ID)
    execute(order, order_command("order.created", 1))
    execute(order, order_command("order.shipped", 5))
    pending = len(order.pending_events)
    before = order.state()
    with pytest.raises(NothingNewer):
        execute(order, order_command("order.shipped", 4))
    with pytest.raises(NothingNewer):
        execute(order, order_command("order.delivered", 3))
    assert len(order.pending_events) == pending
    assert order.state() == before


def test_an_older_paid_event_after_a_newer_one_is_stale() -> None:
    order = Order(ORDER_ID)
    execute(order, order_command("order.created", 1))
    execute(order, order_command("order.paid", 3, amount_cents=300))
    with pytest.raises(NothingNewer):
        execute(order, order_command("order.paid", 2, amount_cents=200))
    assert order.values["paid_cents"] == 300


@pytest.mark.parametrize("event_type", ORDER_EVENTS)
def test_the_same_command_executed_again_with_the_same_key_is_stale(
    event_type: str,
) -> None:
    order = Order(ORDER_ID)
    if event_type != "order.created":
        execute(order, order_command("order.created", 1))
    command = order_command(event_type, 5)
    execute(order, command)
    before = order.state()
    pending = len(order.pending_events)
    with pytest.raises(NothingNewer):
        execute(order, command)
    assert order.state() == before
    assert len(order.pending_events) == pending


def test_ties_in_sequence_are_broken_by_rank_then_by_key() -> None:
    order = Order(ORDER_ID)
    order.execute(order_command("order.created", 7), SOURCE, "b")
    # Same sequence, higher rank: newer.
    order.execute(order_command("order.paid", 7, amount_cents=1), SOURCE, "a")
    assert order.status == "paid"
    # Same sequence and rank: the greater key is newer, the smaller one older.
    order.execute(order_command("order.paid", 7, amount_cents=2), SOURCE, "c")
    assert order.values["paid_cents"] == 2
    with pytest.raises(NothingNewer):
        order.execute(order_command("order.paid", 7, amount_cents=3), SOURCE, "b")
    assert order.values["paid_cents"] == 2


def test_without_a_sequence_the_timestamp_orders_the_events() -> None:
    order = Order(ORDER_ID)
    execute(order, order_command("order.created", 1, sequence=None))
    later = order_command("order.paid", 3, sequence=None, amount_cents=30)
    earlier = order_command("order.paid", 2, sequence=None, amount_cents=20)
    order.execute(later, SOURCE, "later")
    with pytest.raises(NothingNewer):
        order.execute(earlier, SOURCE, "earlier")
    assert order.values["paid_cents"] == 30
    assert order.positions["paid_cents"][0] == int(
        (T0 + timedelta(seconds=3)).timestamp() * 1_000_000
    )
