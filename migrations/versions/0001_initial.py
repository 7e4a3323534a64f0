"""Initial schema: eventsourcing's event table and the deliveries table.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

The event table (and on PostgreSQL its index and composite type) is created
exactly as eventsourcing 9.5.6 would create it for an application named
``idemsync``; the application runs with ``CREATE_TABLE=n`` so that Alembic
owns the whole schema. eventsourcing's optional ``es_insert_events_uuid``
function (used only with ``POSTGRES_ENABLE_DB_FUNCTIONS=y``) is not created.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRES_EVENTS = (
    "CREATE TABLE idemsync_events ("
    "originator_id uuid NOT NULL, "
    "originator_version bigint NOT NULL, "
    "topic text, "
    "state bytea, "
    "notification_id bigserial, "
    "PRIMARY KEY "
    "(originator_id, originator_version)) "
    "WITH ("
    "    autovacuum_enabled = true,"
    "    autovacuum_vacuum_threshold = 100000000,"
    "    autovacuum_vacuum_scale_factor = 0.5,"
    "    autovacuum_analyze_threshold = 1000,"
    "    autovacuum_analyze_scale_factor = 0.01"
    ")"
)
POSTGRES_EVENTS_INDEX = (
    "CREATE UNIQUE INDEX idemsync_events_notification_id_idx "
    "ON idemsync_events (notification_id ASC)"
)
POSTGRES_STORED_EVENT_TYPE = (
    "CREATE TYPE stored_event_uuid "
    "AS (originator_id uuid, "
    "originator_version bigint, "
    "topic text, "
    "state bytea)"
)
SQLITE_EVENTS = (
    "CREATE TABLE idemsync_events ("
    "originator_id TEXT, "
    "originator_version INTEGER, "
    "topic TEXT, "
    "state BLOB, "
    "PRIMARY KEY "
    "(originator_id, originator_version))"
)


def upgrade() -> None:
    """Create the event table and the deliveries table."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_STORED_EVENT_TYPE)
        op.execute(POSTGRES_EVENTS)
        op.execute(POSTGRES_EVENTS_INDEX)
    else:
        op.execute(SQLITE_EVENTS)
    op.create_table(
        "deliveries",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("aggregate_type", sa.Text(), nullable=True),
        sa.Column("aggregate_id", sa.Text(), nullable=True),
        sa.Column("aggregate_version", sa.Integer(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolution_reason", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "attempts", sa.Integer(), nullable=False, server_default=sa.text("1")
        ),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source", "idempotency_key", name="pk_deliveries"),
    )
    op.create_index("ix_deliveries_received_at", "deliveries", ["received_at"])
    op.create_index(
        "ix_deliveries_source_outcome",
        "deliveries",
        ["source", "outcome", "received_at"],
    )


def downgrade() -> None:
    """Drop everything ``upgrade`` created."""
    op.drop_index("ix_deliveries_source_outcome", table_name="deliveries")
    op.drop_index("ix_deliveries_received_at", table_name="deliveries")
    op.drop_table("deliveries")
    op.execute("DROP TABLE idemsync_events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TYPE stored_event_uuid")
