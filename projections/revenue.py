"""``revenue``: money per currency, from each order's paid and refunded totals.

Orders carry totals (``paid_cents``, ``refunded_cents``), last-write-wins, so
the projection keeps each order's last contribution in ``revenue_orders`` and
applies the difference: a duplicate or a late event can never count twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    Text,
    select,
)

from projections.base import Projection, Tables, insert
from projections.orders import OrdersProjection

MONEY = ("currency", "paid_cents", "refunded_cents")


class RevenueProjection(Projection):
    """Per currency: paid, refunded, net, and how many orders paid."""

    name = "revenue"
    event_classes = OrdersProjection.event_classes

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

    def process(self, conn: Connection, tables: Tables, event: Any) -> None:
        if not any(name in event.changes for name in MONEY):
            return
        per_order = tables["revenue_orders"]
        before = conn.execute(
            select(per_order).where(per_order.c.order_id == event.object_id)
        ).first()
        old = dict(before._mapping) if before is not None else None
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
            return
        new["order_id"] = event.object_id
        conn.execute(
            insert(conn, per_order)
            .values(**new)
            .on_conflict_do_update(index_elements=["order_id"], set_=new)
        )
        if old is not None:
            self._add(conn, tables["revenue"], old, -1)
        self._add(conn, tables["revenue"], new, +1)

    @staticmethod
    def _add(
        conn: Connection, revenue: Table, order: dict[str, Any], sign: int
    ) -> None:
        paid, refunded = sign * order["paid_cents"], sign * order["refunded_cents"]
        delta = {
            "paid_cents": paid,
            "refunded_cents": refunded,
            "net_cents": paid - refunded,
            "orders_paid": sign * (1 if order["paid_cents"] > 0 else 0),
        }
        statement = insert(conn, revenue).values(currency=order["currency"], **delta)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["currency"],
                set_={
                    name: revenue.c[name] + statement.excluded[name] for name in delta
                },
            )
        )
