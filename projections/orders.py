"""``orders``: one row per order that exists, as the partner last said.

``refunded_cents`` and ``disputed_cents`` are derived (``Order.money_of``)
from the order's money fields, which ``orders_money`` keeps per order
(``projections.money``): the total stated by ``order.refunded`` and the
refunds and disputes by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

from domain.order import Money, Order
from projections.base import Projection, Tables, object_key, recorded_at
from projections.fold import Row, Rows
from projections.money import Books, takes_money

COLUMNS = (
    "customer_id",
    "status",
    "currency",
    "total_cents",
    "paid_cents",
    "carrier",
    "tracking_number",
)
"""The columns that hold a field as the order's events state it."""


class OrdersProjection(Projection):
    """Orders with their status and amounts; ``version`` is the aggregate's
    version after the last change, ``updated_at`` when that was recorded."""

    name = "orders"
    event_classes = (
        Order.Created,
        Order.Paid,
        Order.Shipped,
        Order.Delivered,
        Order.Cancelled,
        Order.Refunded,
        Order.RefundRecorded,
        Order.DisputeClosed,
    )

    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        orders = Table(
            f"orders{suffix}",
            metadata,
            Column("namespace", Text, nullable=False),
            Column("order_id", Text, nullable=False),
            Column("customer_id", Text),
            Column("status", Text, nullable=False),
            Column("currency", Text),
            Column("total_cents", BigInteger),
            Column("paid_cents", BigInteger),
            Column("refunded_cents", BigInteger),
            Column("carrier", Text),
            Column("tracking_number", Text),
            Column("version", Integer, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
            Column("disputed_cents", BigInteger, nullable=False, server_default="0"),
            PrimaryKeyConstraint("order_id", "namespace"),
        )
        Index(
            f"ix_orders_status{suffix}",
            orders.c.status,
            orders.c.order_id,
            orders.c.namespace,
        )
        Index(
            f"ix_orders_customer{suffix}",
            orders.c.customer_id,
            orders.c.order_id,
            orders.c.namespace,
        )
        money = Table(
            f"orders_money{suffix}",
            metadata,
            Column("namespace", Text, nullable=False),
            Column("order_id", Text, nullable=False),
            Column("stated_refunded_cents", BigInteger),
            Column("by_id", Text, nullable=False),
            PrimaryKeyConstraint("order_id", "namespace"),
        )
        return {"orders": orders, "orders_money": money}

    def process_batch(
        self, conn: Connection, tables: Tables, events: Sequence[Any]
    ) -> None:
        orders = Rows(conn, tables["orders"], map(object_key, events))
        books = Rows(
            conn,
            tables["orders_money"],
            [object_key(event) for event in events if takes_money(event.changes)],
        )
        for event in events:
            order_id = object_key(event)
            row = orders.get(order_id) or {
                "namespace": event.namespace,
                "order_id": event.object_id,
                **dict.fromkeys(COLUMNS),
                "refunded_cents": None,
                "disputed_cents": 0,
            }
            money = None
            if takes_money(event.changes):
                kept = books.get(order_id)
                after = (
                    Books()
                    if kept is None
                    else Books.stored(kept["stated_refunded_cents"], kept["by_id"])
                ).after(event.changes)
                books.put(
                    order_id,
                    {
                        "namespace": event.namespace,
                        "order_id": event.object_id,
                        "stated_refunded_cents": after.stated,
                        "by_id": after.encoded_by_id(),
                    },
                )
                money = after.money
            orders.put(order_id, apply(row, event, money))
        orders.write()
        books.write()


def apply(row: Row, event: Any, money: Money | None = None) -> Row:
    """The order's row after ``event``: the columns it changed, the money
    derived after it (``money``, when it changed a money field), its version
    and when it was recorded."""
    changed = {k: v for k, v in event.changes.items() if k in COLUMNS}
    if money is not None:
        changed["refunded_cents"] = money.refunded_cents
        changed["disputed_cents"] = money.disputed_cents
    return {
        **row,
        **changed,
        "version": event.originator_version,
        "updated_at": recorded_at(event),
    }
