"""The audit ledger: each event's provenance and chained hash; checkpoints.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

``event_audit`` has one row per event, written by the recorder in the same
transaction as the event (see ``infrastructure/persistence/ledger.py``):
where it came from (object, delivery, source time), when it was recorded,
and a SHA-256 chained to the previous event of its aggregate. Its indexes
answer "state as of a time" (aggregate, recorded_at) and "events a delivery
caused" (source, key). ``checkpoints`` chains the ledger's hashes in
notification order (``infrastructure/audit/checkpoints.py``). Events recorded
before this revision are entered into the ledger here, with the provenance
their stored state names.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the ledger and checkpoint tables, and enter existing events."""
    postgres = op.get_bind().dialect.name == "postgresql"
    id_type = sa.Uuid() if postgres else sa.Text()
    op.create_table(
        "event_audit",
        sa.Column("originator_id", id_type, nullable=False),
        sa.Column("originator_version", sa.BigInteger(), nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=False),
        sa.Column("aggregate_type", sa.Text(), nullable=False),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.Text(), nullable=True),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint(
            "originator_id", "originator_version", name="pk_event_audit"
        ),
    )
    op.create_index(
        "ix_event_audit_notification_id",
        "event_audit",
        ["notification_id"],
        unique=True,
    )
    op.create_index(
        "ix_event_audit_recorded_at",
        "event_audit",
        ["originator_id", "recorded_at"],
    )
    op.create_index(
        "ix_event_audit_delivery", "event_audit", ["source", "idempotency_key"]
    )
    op.create_table(
        "checkpoints",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("first_notification_id", sa.BigInteger(), nullable=False),
        sa.Column("last_notification_id", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    from infrastructure.persistence.ledger import enter_existing_events

    enter_existing_events(op.get_bind())


def downgrade() -> None:
    """Drop the ledger and the checkpoints (the events stay)."""
    op.drop_table("checkpoints")
    op.drop_index("ix_event_audit_delivery", table_name="event_audit")
    op.drop_index("ix_event_audit_recorded_at", table_name="event_audit")
    op.drop_index("ix_event_audit_notification_id", table_name="event_audit")
    op.drop_table("event_audit")
