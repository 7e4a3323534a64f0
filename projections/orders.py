"""``orders``: one row per order that exists, as the partner last said."""

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
    Table,
    Text,
)

from domain.order import Order
from projections.base import Projection, Tables, recorded_at
from projections.fold import Row, Rows

COLUMNS = (
    "customer_id",
    "status",
    "currency",
    "total_cents",
    "paid_cents",
    "refunded_cents",
    "carrier",
    "tracking_number",
)


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
    )

    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        orders = Table(
            f"orders{suffix}",
            metadata,
            Column("order_id", Text, primary_key=True),
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
        )
        Index(f"ix_orders_status{suffix}", orders.c.status, orders.c.order_id)
        Index(f"ix_orders_customer{suffix}", orders.c.customer_id, orders.c.order_id)
        return {"orders": orders}

    def process_batch(
        self, conn: Connection, tables: Tables, events: Sequence[Any]
    ) -> None:
        orders = Rows(conn, tables["orders"], {event.object_id for event in events})
        for event in events:
            row = orders.get(event.object_id) or {
                "order_id": event.object_id,
                **dict.fromkeys(COLUMNS),
            }
            orders.put(event.object_id, apply(row, event))
        orders.write()


def apply(row: Row, event: Any) -> Row:
    """The order's row after ``event``: the columns it changed, its version
    and when it was recorded."""
    changed = {k: v for k, v in event.changes.items() if k in COLUMNS}
    return {
        **row,
        **changed,
        "version": event.originator_version,
        "updated_at": recorded_at(event),
    }
