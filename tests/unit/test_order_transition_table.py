"""The order transition table, checked against the specification and cell by cell
(specification §4, "Reference domain rules")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.commands import (
    CancelOrder,
    Command,
    CreateOrder,
    MarkDelivered,
    MarkPaid,
    MarkShipped,
    RecordDispute,
    RecordRefund,
    RefundOrder,
)
from domain.errors import IllegalTransition, NothingNewer
from domain.order import Order
from domain.rules import (
    ORDER_EVENTS,
    ORDER_LIFECYCLE,
    ORDER_MONEY_EVENTS,
    ORDER_STATUS_EVENTS,
    ORDER_STATUS_OF,
    ORDER_TRANSITIONS,
    RANK,
    Verdict,
)
from tests.unit.cells import (
    SOURCE,
    T0,
    Graph,
    assert_cell_is_done,
    at,
    execute,
    expected_verdict,
    shortest_path,
)

ORDER_ID = "ord-1"


# -- the specification's rule, computed independently ------------------------------

CONTRACT_LIFECYCLE: Graph = {
    "created": ("paid", "cancelled"),
    "paid": ("shipped", "cancelled", "refunded"),
    "shipped": ("delivered", "refunded"),
    "delivered": ("refunded",),
    "cancelled": ("refunded",),
    "refunded": (),
}
"""The specification's order lifecycle graph, direct successors only."""
STATUSES: list[str | None] = [None, *CONTRACT_LIFECYCLE]
CONTRACT_BOOKKEEPING = ("order.refund_recorded", "order.dispute_closed")
"""A refund and a closed dispute, each by the partner's id (specification §
11): they never move or reject the status, and park until the order exists."""


def expected_order_verdict(status: str | None, event_type: str) -> Verdict:
    if event_type in CONTRACT_BOOKKEEPING:
        return Verdict.PARK if status is None else Verdict.KEEP
    return expected_verdict(
        CONTRACT_LIFECYCLE,
        status,
        event_type.removeprefix("order."),
        creates=event_type == "order.created",
    )


# -- helpers ---------------------------------------------------------------------


COMMAND_CLASSES: dict[str, type[Command]] = {
    "order.created": CreateOrder,
    "order.paid": MarkPaid,
    "order.shipped": MarkShipped,
    "order.delivered": MarkDelivered,
    "order.cancelled": CancelOrder,
    "order.refunded": RefundOrder,
    "order.refund_recorded": RecordRefund,
    "order.dispute_closed": RecordDispute,
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
        "order.refund_recorded": {"refund_id": "re_1", "amount_cents": 10 + step},
        "order.dispute_closed": {
            "dispute_id": "dp_1",
            "amount_cents": 20 + step,
            "lost": step % 2 == 0,
        },
    }
    arguments: dict[str, Any] = {
        "order_id": ORDER_ID,
        **at(step),
        **defaults[event_type],
        **overrides,
    }
    return COMMAND_CLASSES[event_type](**arguments)


def order_in(status: str | None) -> tuple[Order, int]:
    """A new order brought into ``status`` along the lifecycle; returns it with
    the last sequence used."""
    order = Order(ORDER_ID)
    if status is None:
        return order, 0
    execute(order, order_command("order.created", 1))
    sequence = 1
    for step in shortest_path(CONTRACT_LIFECYCLE, "created", status):
        sequence += 1
        execute(order, order_command(f"order.{step}", sequence))
    assert order.status == status
    return order, sequence


# -- (a) the table is the specification's rule ---------------------------------------


def test_the_table_has_a_row_per_status_and_a_column_per_event_type() -> None:
    assert set(ORDER_TRANSITIONS) == set(STATUSES)
    for row in ORDER_TRANSITIONS.values():
        assert tuple(row) == ORDER_EVENTS
    assert set(ORDER_EVENTS) == {*ORDER_STATUS_EVENTS, *ORDER_MONEY_EVENTS}
    assert ORDER_MONEY_EVENTS == CONTRACT_BOOKKEEPING
    assert set(ORDER_STATUS_OF) == set(ORDER_STATUS_EVENTS)
    assert {ORDER_STATUS_OF[e] for e in ORDER_STATUS_EVENTS} == set(ORDER_LIFECYCLE)
    for event_type in ORDER_STATUS_EVENTS:
        assert ORDER_STATUS_OF[event_type] == event_type.removeprefix("order.")


STORED_RANKS = {
    "order.created": 0,
    "order.paid": 1,
    "order.shipped": 2,
    "order.delivered": 3,
    "order.cancelled": 4,
    "order.refunded": 5,
    "order.refund_recorded": 6,
    "order.dispute_closed": 7,
}
"""The ranks stored positions hold: a new type must not change them."""


def test_every_rank_a_stored_position_holds_stays_and_bookkeeping_ranks_last() -> None:
    assert {name: RANK[name] for name in STORED_RANKS} == STORED_RANKS


@pytest.mark.parametrize("event_type", ORDER_EVENTS)
@pytest.mark.parametrize("status", STATUSES)
def test_each_cell_of_the_table_follows_the_lifecycle_graph(
    status: str | None, event_type: str
) -> None:
    assert ORDER_TRANSITIONS[status][event_type] is expected_order_verdict(
        status, event_type
    )


def test_the_lifecycle_graph_is_the_specifications() -> None:
    assert ORDER_LIFECYCLE == CONTRACT_LIFECYCLE


# -- (b) the aggregate does what each cell says ----------------------------------


@pytest.mark.parametrize("event_type", ORDER_EVENTS)
@pytest.mark.parametrize("status", STATUSES)
def test_a_newer_event_does_what_its_cell_says(
    status: str | None, event_type: str
) -> None:
    order, last = order_in(status)
    assert_cell_is_done(
        order,
        status,
        order_command(event_type, last + 10),
        ORDER_TRANSITIONS[status][event_type],
        created="created",
        target=ORDER_STATUS_OF.get(event_type, "no status"),
    )


# -- (c) the specification's named examples -------------------------------------------


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
    "event_type", [e for e in ORDER_STATUS_EVENTS if e != "order.refunded"]
)
def test_any_status_but_another_refund_after_refunded_is_rejected(
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
    assert order.positions["status"] == order_command("order.shipped", 3).position()
    assert order.values["paid_cents"] == 4200
    assert order.positions["paid_cents"] == late.position()


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


def test_ties_in_sequence_are_broken_by_rank_then_by_content_never_by_key() -> None:
    order = Order(ORDER_ID)
    order.execute(order_command("order.created", 7), SOURCE, "b")
    # Same sequence and rank: the content digest decides, whichever key
    # carries each, and whichever arrives first.
    two = order_command("order.paid", 7, amount_cents=2)
    three = order_command("order.paid", 7, amount_cents=3)
    newer, older = sorted((two, three), key=lambda c: c.position(), reverse=True)
    # Same sequence, higher rank than the creation: newer.
    order.execute(newer, SOURCE, "a-smaller-key")
    assert order.status == "paid"
    with pytest.raises(NothingNewer):
        order.execute(older, SOURCE, "z-greater-key")
    assert order.values["paid_cents"] == newer.amount_cents


def test_the_same_event_under_a_fresh_key_is_stale_and_appends_nothing() -> None:
    order = Order(ORDER_ID)
    order.execute(order_command("order.created", 1), SOURCE, "k-1")
    paid = order_command("order.paid", 2, amount_cents=500)
    order.execute(paid, SOURCE, "k-2")
    order.collect_events()
    for fresh in ("k-0", "k-2-again", "zzzz"):
        with pytest.raises(NothingNewer):
            order.execute(paid, SOURCE, fresh)
    assert order.pending_events == []
    assert order.positions["paid_cents"] == paid.position()


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


# -- bookkeeping: refunds and disputes by id (KEEP) ----------------------------------


@pytest.mark.parametrize("event_type", ORDER_MONEY_EVENTS)
@pytest.mark.parametrize("status", ["cancelled", "refunded"])
def test_a_refund_or_dispute_on_a_cancelled_or_refunded_order_still_counts(
    status: str, event_type: str
) -> None:
    order, last = order_in(status)
    command = order_command(event_type, last + 1)
    execute(order, command)
    assert order.status == status
    (name,) = command.values()
    assert order.values[name] == command.values()[name]


@pytest.mark.parametrize("event_type", ORDER_MONEY_EVENTS)
def test_a_refund_or_dispute_older_than_the_status_is_applied_and_leaves_it(
    event_type: str,
) -> None:
    order = Order(ORDER_ID)
    execute(order, order_command("order.created", 1))
    shipped = order_command("order.shipped", 9)
    execute(order, shipped)
    execute(order, order_command(event_type, 4))
    assert order.status == "shipped"
    assert order.positions["status"] == shipped.position()


@pytest.mark.parametrize("event_type", ORDER_MONEY_EVENTS)
def test_a_status_event_older_than_a_refund_or_dispute_still_moves_the_status(
    event_type: str,
) -> None:
    order = Order(ORDER_ID)
    execute(order, order_command("order.created", 1))
    execute(order, order_command(event_type, 9))
    execute(order, order_command("order.shipped", 5))
    assert order.status == "shipped"


def test_refunds_with_different_ids_are_different_fields() -> None:
    order, last = order_in("paid")
    execute(order, order_command("order.refund_recorded", last + 1, refund_id="a"))
    execute(order, order_command("order.refund_recorded", last + 2, refund_id="b"))
    assert {n for n in order.values if n.startswith("refunds.")} == {
        "refunds.a",
        "refunds.b",
    }
