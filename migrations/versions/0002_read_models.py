"""Read models and projection positions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

The tables of ``projections/`` (orders, customers, revenue with its per-order
state, source_stats) and ``projection_positions``, where each projection
records, in the same transaction as its rows, the last notification id it
applied.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROJECTIONS = ("orders", "customers", "revenue", "source_stats")


def upgrade() -> None:
    """Create the read-model tables and one position row per projection."""
    op.create_table(
        "projection_positions",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(
        sa.table(
            "projection_positions",
            sa.column("name", sa.Text()),
            sa.column("position", sa.BigInteger()),
            sa.column("state", sa.Text()),
            sa.column("failures", sa.Integer()),
        ),
        [
            {"name": name, "position": 0, "state": "running", "failures": 0}
            for name in PROJECTIONS
        ],
    )
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text(), primary_key=True),
        sa.Column("customer_id", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text()),
        sa.Column("total_cents", sa.BigInteger()),
        sa.Column("paid_cents", sa.BigInteger()),
        sa.Column("refunded_cents", sa.BigInteger()),
        sa.Column("carrier", sa.Text()),
        sa.Column("tracking_number", sa.Text()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_orders_status", "orders", ["status", "order_id"])
    op.create_index("ix_orders_customer", "orders", ["customer_id", "order_id"])
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.Text(), primary_key=True),
        sa.Column("email", sa.Text()),
        sa.Column("name", sa.Text()),
        sa.Column("phone", sa.Text()),
        sa.Column("address", sa.Text()),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "revenue",
        sa.Column("currency", sa.Text(), primary_key=True),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("refunded_cents", sa.BigInteger(), nullable=False),
        sa.Column("net_cents", sa.BigInteger(), nullable=False),
        sa.Column("orders_paid", sa.Integer(), nullable=False),
    )
    op.create_table(
        "revenue_orders",
        sa.Column("order_id", sa.Text(), primary_key=True),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("refunded_cents", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "source_stats",
        sa.Column("source", sa.Text(), primary_key=True),
        sa.Column("outcome", sa.Text(), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the read models and the positions."""
    for table in (
        "source_stats",
        "revenue_orders",
        "revenue",
        "customers",
        "orders",
        "projection_positions",
    ):
        op.drop_table(table)
