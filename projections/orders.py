"""``orders``: one row per order that exists, as the partner last said."""

from __future__ import annotations

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
    insert,
    update,
)

from domain.order import Order
from projections.base import Projection, Tables, recorded_at

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

    def process(self, conn: Connection, tables: Tables, event: Any) -> None:
        orders = tables["orders"]
        changed = {k: v for k, v in event.changes.items() if k in COLUMNS}
        row = {
            **changed,
            "version": event.originator_version,
            "updated_at": recorded_at(event),
        }
        # UPDATE, else INSERT: an upsert would check NOT NULL columns of the
        # proposed row (status) before it finds the conflict.
        updated = conn.execute(
            update(orders).where(orders.c.order_id == event.object_id).values(**row)
        )
        if updated.rowcount == 0:
            conn.execute(insert(orders).values(order_id=event.object_id, **row))
