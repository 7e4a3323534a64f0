"""Refunds as a set keyed by the partner's refund id, and lost disputes
(specification §11), in memory: each refund counts once whichever events
carry it, an update replaces it by position, a cancelled one (0) counts
nothing, a stated refunded total and the set give the larger, and any
schedule of a history ends where in-order delivery ends (section 5.4)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from hypothesis import given, settings

from domain.application import SyncService
from domain.commands import (
    CancelOrder,
    Command,
    CreateOrder,
    MarkPaid,
    RecordDispute,
    RecordRefund,
    RefundOrder,
)
from domain.delivery import Delivery, Outcome
from domain.order import Money, Order
from tests.money_histories import (
    SOURCE,
    T0,
    History,
    Sent,
    histories_and_schedules,
)

ORDER_ID = "ord-1"
MEMORY = {"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}


class Books:
    """One order in a fresh in-memory service, fed commands by sequence."""

    def __init__(self) -> None:
        self.service = SyncService(env=MEMORY)
        self.keys = 0

    def send(self, command: Command, key: str | None = None) -> Outcome:
        self.keys += 1
        key = key or f"k-{self.keys}"
        delivery = Delivery(SOURCE, key, T0, b"{}", {})
        return self.service.receive(delivery, [command]).outcome

    def order(self) -> Order:
        found = self.service.find("order", ORDER_ID)
        assert found is not None
        return cast(Order, found)

    @property
    def money(self) -> Money:
        return self.order().money


def at(sequence: int) -> dict[str, Any]:
    return {
        "order_id": ORDER_ID,
        "sequence": sequence,
        "occurred_at": T0 + timedelta(seconds=sequence),
    }


def refund(sequence: int, refund_id: str, amount: int) -> RecordRefund:
    return RecordRefund(refund_id=refund_id, amount_cents=amount, **at(sequence))


def dispute(sequence: int, dispute_id: str, amount: int, lost: bool) -> RecordDispute:
    return RecordDispute(
        dispute_id=dispute_id, amount_cents=amount, lost=lost, **at(sequence)
    )


def paid_order() -> Books:
    books = Books()
    books.send(CreateOrder(customer_id="c", currency="EUR", total_cents=9000, **at(1)))
    books.send(MarkPaid(amount_cents=9000, **at(2)))
    return books


# -- the set -------------------------------------------------------------------------


def test_an_order_that_refunded_nothing_shows_no_refund_and_no_dispute() -> None:
    assert paid_order().money == Money(refunded_cents=None, disputed_cents=0)


def test_one_refund_carried_by_several_events_under_several_keys_counts_once() -> None:
    books = paid_order()
    # refund.created, charge.refunded and refund.updated all carry re_1.
    for sequence in (10, 11, 12):
        assert books.send(refund(sequence, "re_1", 500)) is Outcome.APPLIED
    # The same event again under fresh keys: stale.
    for fresh in ("again-1", "again-2"):
        assert books.send(refund(12, "re_1", 500), fresh) is Outcome.STALE
    assert books.money.refunded_cents == 500


def test_refunds_with_different_ids_add_up() -> None:
    books = paid_order()
    books.send(refund(10, "re_1", 500))
    books.send(refund(11, "re_2", 250))
    assert books.money.refunded_cents == 750


def test_a_refund_updated_later_replaces_it_and_an_older_late_version_is_stale() -> (
    None
):
    books = paid_order()
    books.send(refund(10, "re_1", 500))
    assert books.send(refund(13, "re_1", 400)) is Outcome.APPLIED
    assert books.send(refund(11, "re_1", 900)) is Outcome.STALE
    assert books.money.refunded_cents == 400
    assert books.order().values["refunds.re_1"] == 400


def test_a_cancelled_refund_stated_as_0_takes_its_money_back_out() -> None:
    books = paid_order()
    books.send(refund(10, "re_1", 500))
    books.send(refund(11, "re_2", 300))
    books.send(refund(12, "re_1", 0))
    assert books.money.refunded_cents == 300


def test_a_stated_total_larger_than_the_refunds_by_id_wins() -> None:
    books = paid_order()
    books.send(refund(10, "re_1", 500))
    books.send(RefundOrder(amount_cents=1200, **at(11)))
    assert books.money.refunded_cents == 1200


def test_refunds_by_id_beyond_an_earlier_stated_total_win() -> None:
    books = paid_order()
    books.send(RefundOrder(amount_cents=500, **at(10)))
    books.send(refund(11, "re_1", 500))
    assert books.money.refunded_cents == 500  # the same refund: counted once
    books.send(refund(12, "re_2", 700))
    assert books.money.refunded_cents == 1200


def test_a_refund_on_a_cancelled_order_counts_and_leaves_it_cancelled() -> None:
    books = paid_order()
    books.send(CancelOrder(**at(5)))
    assert books.send(refund(10, "re_1", 9000)) is Outcome.APPLIED
    assert books.order().status == "cancelled"
    assert books.money.refunded_cents == 9000


def test_a_refund_before_its_order_exists_is_parked_then_counted() -> None:
    books = Books()
    assert books.send(refund(10, "re_1", 500)) is Outcome.PARKED
    books.send(CreateOrder(customer_id="c", currency="EUR", total_cents=9, **at(1)))
    assert books.money.refunded_cents == 500


# -- disputes ---------------------------------------------------------------------


def test_only_lost_disputes_count_and_a_newer_closing_replaces_an_older_one() -> None:
    books = paid_order()
    books.send(dispute(10, "dp_1", 800, lost=True))
    books.send(dispute(11, "dp_2", 300, lost=False))
    assert books.money.disputed_cents == 800
    books.send(dispute(12, "dp_1", 800, lost=False))
    assert books.money.disputed_cents == 0
    assert books.money.refunded_cents is None


# -- any schedule -----------------------------------------------------------------


def money_after(sends: list[tuple[Sent, Command]]) -> tuple[Books, list[Outcome]]:
    books = Books()
    outcomes = [
        books.service.receive(sent.delivery(command), [command]).outcome
        for sent, command in sends
    ]
    return books, outcomes


def commands(history: History, sends: tuple[Sent, ...]) -> list[tuple[Sent, Command]]:
    return [
        (sent, sent.step.command(ORDER_ID, "EUR", history.by_sequence))
        for sent in sends
    ]


@settings(max_examples=300, deadline=None)
@given(histories_and_schedules())
def test_any_schedule_of_refunds_and_disputes_counts_the_money_of_in_order_delivery(
    case: tuple[History, tuple[Sent, ...]],
) -> None:
    history, schedule = case
    in_order = tuple(Sent(step.key, step) for step in history.steps)
    expected, outcomes = money_after(commands(history, in_order))
    assert set(outcomes) == {Outcome.APPLIED}

    found, _ = money_after(commands(history, schedule))

    assert found.order().state() == expected.order().state()
    money = Money(history.refunded_cents(), history.disputed_cents())
    assert found.money == expected.money == money
    order = found.order()
    paid = order.values["paid_cents"]
    refunded = order.money.refunded_cents or 0
    disputed = order.money.disputed_cents
    assert (paid, refunded, disputed, paid - refunded - disputed) == history.revenue()
