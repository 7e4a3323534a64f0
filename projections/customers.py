"""``customers``: one row per customer; a deleted one keeps only its id."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

from domain.commands import CUSTOMER_FIELDS
from domain.customer import Customer
from projections.base import Projection, Tables, object_key, recorded_at
from projections.fold import Row, Rows


class CustomersProjection(Projection):
    """Customers' personal fields; ``address`` is JSON text when the partner
    sends an object. Deletion and erasure clear the fields (the domain
    cleared them); a field read as ``ERASED`` (its key erased) is kept as
    that text until the erasure's own event clears it."""

    name = "customers"
    event_classes = (
        Customer.Upserted,
        Customer.Deleted,
        Customer.Erased,  # type: ignore[attr-defined]  # made by @event
    )

    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        customers = Table(
            f"customers{suffix}",
            metadata,
            Column("namespace", Text, nullable=False),
            Column("customer_id", Text, nullable=False),
            Column("email", Text),
            Column("name", Text),
            Column("phone", Text),
            Column("address", Text),
            Column("deleted", Boolean, nullable=False),
            Column("version", Integer, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
            PrimaryKeyConstraint("customer_id", "namespace"),
        )
        return {"customers": customers}

    def process_batch(
        self, conn: Connection, tables: Tables, events: Sequence[Any]
    ) -> None:
        customers = Rows(conn, tables["customers"], map(object_key, events))
        for event in events:
            key = object_key(event)
            row = customers.get(key) or {
                "namespace": event.namespace,
                "customer_id": event.object_id,
                **dict.fromkeys(CUSTOMER_FIELDS),
                "deleted": False,
            }
            customers.put(key, apply(row, event))
        customers.write()


def apply(row: Row, event: Any) -> Row:
    """The customer's row after ``event``: the personal fields it changed,
    ``deleted`` when it changed the status, its version and when it was
    recorded."""
    new = {**row}
    for name, value in event.changes.items():
        if name in CUSTOMER_FIELDS:
            new[name] = _text(value)
    if "status" in event.changes:
        new["deleted"] = event.changes["status"] == "deleted"
    new["version"] = event.originator_version
    new["updated_at"] = recorded_at(event)
    return new


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
