"""Histories of refunds and disputes on one paid order, and schedules of
them, for the refund-set properties (specification §s 5.4 and 11).

A history is generated in source order: the order is created and paid, then
refunds and disputes by id, each stated one or more times (a later version
updates it: a new amount, 0 for a cancelled refund, lost or won), and maybe
refunded totals stated by ``order.refunded``. Each version is carried by one
to three events under different keys (Stripe's ``charge.refunded``,
``refund.created`` and ``refund.updated``; Shopify's ``refunds/create`` and
``orders/updated``), each at its own position. A schedule delivers them in
any order, with retries (same key) and re-sends under fresh keys.

The plan is abstract (``Step``): ``command`` makes it the commands of any
order id and currency, so one database can hold many examples side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from domain.commands import (
    Command,
    CreateOrder,
    MarkPaid,
    RecordDispute,
    RecordRefund,
    RefundOrder,
)
from domain.delivery import Delivery

SOURCE = "acme"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
REFUND_IDS = ("re_1", "re_2", "re_3")
DISPUTE_IDS = ("dp_1", "dp_2")


@dataclass(frozen=True)
class Step:
    """One event of a history: its delivery key, what it says (``kind``:
    created, paid, refund, dispute or stated, with ``ident``, ``amount``
    and ``lost``) and its position's value (a sequence, or microseconds
    after ``T0``)."""

    key: str
    kind: str
    value: int
    amount: int = 0
    ident: str = ""
    lost: bool = False

    def command(self, order_id: str, currency: str, by_sequence: bool) -> Command:
        at: dict[str, Any] = {
            "order_id": order_id,
            "sequence": self.value if by_sequence else None,
            "occurred_at": T0 + timedelta(microseconds=self.value),
        }
        if self.kind == "created":
            return CreateOrder(
                customer_id="cus-1", currency=currency, total_cents=self.amount, **at
            )
        if self.kind == "paid":
            return MarkPaid(amount_cents=self.amount, **at)
        if self.kind == "refund":
            return RecordRefund(refund_id=self.ident, amount_cents=self.amount, **at)
        if self.kind == "dispute":
            return RecordDispute(
                dispute_id=self.ident, amount_cents=self.amount, lost=self.lost, **at
            )
        assert self.kind == "stated"
        return RefundOrder(amount_cents=self.amount, **at)


@dataclass(frozen=True)
class History:
    """A history (``steps``, in source order) and whether its positions are
    sequences or times."""

    steps: tuple[Step, ...]
    by_sequence: bool

    @property
    def paid_cents(self) -> int:
        return next(s.amount for s in self.steps if s.kind == "paid")

    def refunded_cents(self) -> int | None:
        """What the history refunds, computed from it: the larger of the last
        stated total and the sum of each refund's last version."""
        stated = self._last("stated")
        refunds = [step.amount for step in self._latest("refund").values()]
        if not stated and not refunds:
            return None
        return max(stated[-1].amount if stated else 0, sum(refunds))

    def disputed_cents(self) -> int:
        """The sum of the disputes whose last version was lost."""
        return sum(s.amount for s in self._latest("dispute").values() if s.lost)

    def revenue(self) -> tuple[int, int, int, int]:
        """(paid, refunded, disputed, net) of the order's currency."""
        paid, refunded = self.paid_cents, self.refunded_cents() or 0
        disputed = self.disputed_cents()
        return paid, refunded, disputed, paid - refunded - disputed

    def _last(self, kind: str) -> list[Step]:
        return sorted((s for s in self.steps if s.kind == kind), key=lambda s: s.value)

    def _latest(self, kind: str) -> dict[str, Step]:
        return {step.ident: step for step in self._last(kind)}


@dataclass(frozen=True)
class Sent:
    """One delivery of a schedule: its key and the step it carries."""

    key: str
    step: Step

    def delivery(self, command: Command) -> Delivery:
        body = json.dumps(command.to_dict(), sort_keys=True).encode()
        return Delivery(SOURCE, self.key, T0, body, {})


@st.composite
def histories(draw: st.DrawFn) -> History:
    value = draw(st.integers(1, 5))
    steps = [Step("evt-000", "created", value, draw(st.integers(1, 10**6)))]
    value += draw(st.integers(1, 3))
    steps.append(Step("evt-001", "paid", value, draw(st.integers(1, 10**6))))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["refund", "refund", "dispute", "stated"]))
        ident = ""
        if kind != "stated":
            ident = draw(
                st.sampled_from(REFUND_IDS if kind == "refund" else DISPUTE_IDS)
            )
        amount = draw(st.sampled_from([0, 1, 250, 999, 5000]) | st.integers(0, 10**5))
        lost = draw(st.booleans())
        carriers = 1 if kind == "stated" else draw(st.integers(1, 3))
        for _ in range(carriers):
            value += draw(st.integers(1, 3))
            key = f"evt-{len(steps):03d}"
            steps.append(Step(key, kind, value, amount, ident, lost))
    return History(tuple(steps), draw(st.booleans()))


@st.composite
def histories_and_schedules(draw: st.DrawFn) -> tuple[History, tuple[Sent, ...]]:
    """A history and any schedule of it: every event in any order, retries
    under the same key, and re-sends under fresh keys."""
    history = draw(histories())
    sent = [Sent(step.key, step) for step in history.steps]
    retries = draw(st.lists(st.sampled_from(sent), max_size=len(sent)))
    re_sent = [
        Sent(f"{s.key}-again-{n}", s.step)
        for n, s in enumerate(draw(st.lists(st.sampled_from(sent), max_size=4)))
    ]
    return history, tuple(draw(st.permutations([*sent, *retries, *re_sent])))
