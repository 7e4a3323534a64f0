"""``revenue``: money per currency, from each order's paid and refunded totals.

Orders carry totals (``paid_cents``, ``refunded_cents``), last-write-wins, so
the projection keeps each order's last contribution in ``revenue_orders`` and
applies the difference: a duplicate or a late event can never count twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    Text,
)

from domain.order import Order
from projections.base import Projection, Tables
from projections.fold import Row, Rows

MONEY = ("currency", "paid_cents", "refunded_cents")


class RevenueProjection(Projection):
    """Per currency: paid, refunded, net, and how many orders paid."""

    name = "revenue"
    event_classes = (Order.Created, Order.Paid, Order.Refunded)
    """The order events that can carry money (``MONEY``): the others are
    neither read nor decoded."""

    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        revenue = Table(
            f"revenue{suffix}",
            metadata,
            Column("currency", Text, primary_key=True),
            Column("paid_cents", BigInteger, nullable=False),
            Column("refunded_cents", BigInteger, nullable=False),
            Column("net_cents", BigInteger, nullable=False),
            Column("orders_paid", Integer, nullable=False),
        )
        per_order = Table(
            f"revenue_orders{suffix}",
            metadata,
            Column("order_id", Text, primary_key=True),
            Column("currency", Text, nullable=False),
            Column("paid_cents", BigInteger, nullable=False),
            Column("refunded_cents", BigInteger, nullable=False),
        )
        return {"revenue": revenue, "revenue_orders": per_order}

    def process_batch(
        self, conn: Connection, tables: Tables, events: Sequence[Any]
    ) -> None:
        events = [e for e in events if any(name in e.changes for name in MONEY)]
        if not events:
            return
        per_order = Rows(
            conn, tables["revenue_orders"], {event.object_id for event in events}
        )
        deltas: dict[str, Row] = {}  # per currency, in the order first touched
        for event in events:
            old = per_order.get(event.object_id)
            new = contribution_after(old, event)
            if new is None:
                continue
            per_order.put(event.object_id, new)
            if old is not None:
                self._add(deltas, old, -1)
            self._add(deltas, new, +1)
        per_order.write()
        revenue = Rows(conn, tables["revenue"], deltas)
        for currency, delta in deltas.items():
            total = revenue.get(currency) or {"currency": currency, **ZERO}
            revenue.put(currency, {**total, **{k: total[k] + delta[k] for k in ZERO}})
        revenue.write()

    @classmethod
    def _add(cls, deltas: dict[str, Row], order: Row, sign: int) -> None:
        """Add (sign +1) or take away (-1) an order's contribution to its
        currency's totals."""
        delta = deltas.setdefault(order["currency"], dict(ZERO))
        for name, value in cls.contribution(order).items():
            delta[name] += sign * value

    @staticmethod
    def contribution(order: Row) -> dict[str, int]:
        """What one order (its ``revenue_orders`` row) adds to its currency."""
        paid, refunded = order["paid_cents"], order["refunded_cents"]
        return {
            "paid_cents": paid,
            "refunded_cents": refunded,
            "net_cents": paid - refunded,
            "orders_paid": 1 if paid > 0 else 0,
        }


ZERO = {"paid_cents": 0, "refunded_cents": 0, "net_cents": 0, "orders_paid": 0}


def contribution_after(old: Row | None, event: Any) -> Row | None:
    """The order's ``revenue_orders`` row after ``event`` (which changed
    money), from the row before it; None while the order has no currency
    (it then counts nowhere)."""
    new = {
        "currency": None,
        "paid_cents": 0,
        "refunded_cents": 0,
        **(old or {}),
        **{k: v for k, v in event.changes.items() if k in MONEY},
    }
    new["paid_cents"] = new["paid_cents"] or 0
    new["refunded_cents"] = new["refunded_cents"] or 0
    if new["currency"] is None:
        return None
    new["order_id"] = event.object_id
    return new
