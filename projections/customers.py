"""``customers``: one row per customer; a deleted one keeps only its id."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    update,
)

from domain.commands import CUSTOMER_FIELDS
from domain.customer import Customer
from projections.base import Projection, Tables, recorded_at


class CustomersProjection(Projection):
    """Customers' personal fields; ``address`` is JSON text when the partner
    sends an object. Deletion clears the fields (the domain cleared them)."""

    name = "customers"
    event_classes = (Customer.Upserted, Customer.Deleted)

    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        customers = Table(
            f"customers{suffix}",
            metadata,
            Column("customer_id", Text, primary_key=True),
            Column("email", Text),
            Column("name", Text),
            Column("phone", Text),
            Column("address", Text),
            Column("deleted", Boolean, nullable=False),
            Column("version", Integer, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        return {"customers": customers}

    def process(self, conn: Connection, tables: Tables, event: Any) -> None:
        customers = tables["customers"]
        row: dict[str, Any] = {
            name: _text(value)
            for name, value in event.changes.items()
            if name in CUSTOMER_FIELDS
        }
        if "status" in event.changes:
            row["deleted"] = event.changes["status"] == "deleted"
        row["version"] = event.originator_version
        row["updated_at"] = recorded_at(event)
        updated = conn.execute(
            update(customers)
            .where(customers.c.customer_id == event.object_id)
            .values(**row)
        )
        if updated.rowcount == 0:
            conn.execute(
                insert(customers).values(
                    customer_id=event.object_id, **{"deleted": False, **row}
                )
            )


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
