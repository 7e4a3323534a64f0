"""``revenue``: money per currency, from each order's paid, refunded and
disputed amounts.

An order's money is last-write-wins per field (the paid total, the refunded
total stated by ``order.refunded``, each refund and dispute by its id), so
the projection keeps each order's fields and last contribution in
``revenue_orders`` and applies the difference: a duplicate or a late event
can never count twice. What was refunded and disputed is derived from the
fields by ``Order.money_of`` (``projections.money``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

from domain.order import Order
from projections.base import Projection, Tables, object_key
from projections.fold import Row, Rows
from projections.money import Books, takes_money


def carries_money(changes: Mapping[str, Any]) -> bool:
    """Whether an event changed what its order counts for (its currency,
    its paid total, or a field ``Order.money_of`` reads)."""
    return "currency" in changes or "paid_cents" in changes or takes_money(changes)


class RevenueProjection(Projection):
    """Per namespace and currency: paid, refunded, lost to disputes, net, and how many
    orders paid."""

    name = "revenue"
    event_classes = (
        Order.Created,
        Order.Paid,
        Order.Refunded,
        Order.RefundRecorded,
        Order.DisputeClosed,
    )
    """The order events that can carry money (``carries_money``): the others
    are neither read nor decoded."""

    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        revenue = Table(
            f"revenue{suffix}",
            metadata,
            Column("namespace", Text, primary_key=True),
            Column("currency", Text, primary_key=True),
            Column("paid_cents", BigInteger, nullable=False),
            Column("refunded_cents", BigInteger, nullable=False),
            Column("net_cents", BigInteger, nullable=False),
            Column("orders_paid", Integer, nullable=False),
            Column("disputed_cents", BigInteger, nullable=False, server_default="0"),
        )
        per_order = Table(
            f"revenue_orders{suffix}",
            metadata,
            Column("namespace", Text, nullable=False),
            Column("order_id", Text, nullable=False),
            Column("currency", Text, nullable=False),
            Column("paid_cents", BigInteger, nullable=False),
            Column("refunded_cents", BigInteger, nullable=False),
            Column("disputed_cents", BigInteger, nullable=False, server_default="0"),
            Column(
                "stated_refunded_cents", BigInteger, nullable=False, server_default="0"
            ),
            Column("by_id", Text, nullable=False, server_default="{}"),
            PrimaryKeyConstraint("order_id", "namespace"),
        )
        return {"revenue": revenue, "revenue_orders": per_order}

    def process_batch(
        self, conn: Connection, tables: Tables, events: Sequence[Any]
    ) -> None:
        events = [e for e in events if carries_money(e.changes)]
        if not events:
            return
        per_order = Rows(conn, tables["revenue_orders"], map(object_key, events))
        # per namespace and currency, in the order first touched
        deltas: dict[tuple[str, str], Row] = {}
        for event in events:
            old = per_order.get(object_key(event))
            new = contribution_after(old, event)
            if new is None:
                continue
            per_order.put(object_key(event), new)
            if old is not None:
                self._add(deltas, old, -1)
            self._add(deltas, new, +1)
        per_order.write()
        revenue = Rows(conn, tables["revenue"], deltas)
        for (namespace, currency), delta in deltas.items():
            total = revenue.get((namespace, currency)) or {
                "namespace": namespace,
                "currency": currency,
                **ZERO,
            }
            revenue.put(
                (namespace, currency),
                {**total, **{k: total[k] + delta[k] for k in ZERO}},
            )
        revenue.write()

    @classmethod
    def _add(cls, deltas: dict[tuple[str, str], Row], order: Row, sign: int) -> None:
        """Add (sign +1) or take away (-1) an order's contribution to its
        namespace's and currency's totals."""
        delta = deltas.setdefault((order["namespace"], order["currency"]), dict(ZERO))
        for name, value in cls.contribution(order).items():
            delta[name] += sign * value

    @staticmethod
    def contribution(order: Row) -> dict[str, int]:
        """What one order (its ``revenue_orders`` row) adds to its currency:
        net is paid less refunded less lost to disputes."""
        paid, refunded = order["paid_cents"], order["refunded_cents"]
        disputed = order["disputed_cents"]
        return {
            "paid_cents": paid,
            "refunded_cents": refunded,
            "disputed_cents": disputed,
            "net_cents": paid - refunded - disputed,
            "orders_paid": 1 if paid > 0 else 0,
        }


ZERO = {
    "paid_cents": 0,
    "refunded_cents": 0,
    "disputed_cents": 0,
    "net_cents": 0,
    "orders_paid": 0,
}


def contribution_after(old: Row | None, event: Any) -> Row | None:
    """The order's ``revenue_orders`` row after ``event`` (which changed
    money), from the row before it; None while the order has no currency
    (it then counts nowhere)."""
    before: Row = {
        "currency": None,
        "paid_cents": 0,
        "stated_refunded_cents": 0,
        "by_id": "{}",
        **(old or {}),
    }
    changes = event.changes
    currency = changes.get("currency", before["currency"])
    if currency is None:
        return None
    books = Books.stored(before["stated_refunded_cents"], before["by_id"])
    books = books.after(changes)
    money = books.money
    return {
        "namespace": event.namespace,
        "order_id": event.object_id,
        "currency": currency,
        "paid_cents": changes.get("paid_cents", before["paid_cents"]) or 0,
        "refunded_cents": money.refunded_cents or 0,
        "disputed_cents": money.disputed_cents,
        "stated_refunded_cents": books.stated or 0,
        "by_id": books.encoded_by_id(),
    }
