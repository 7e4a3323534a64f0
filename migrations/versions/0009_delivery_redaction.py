"""Delivery redaction: a record's payload and headers can be erased, their
digests kept.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

A delivery record keeps the raw payload and headers for ``retention_days``;
a customer's payload holds their email, name, phone and address. Erasing a
customer (GDPR, Shopify ``customers/redact``) empties those two columns of
the customer's records (``infrastructure/privacy/redaction.py``), and keeps:

* ``payload_sha256`` and ``headers_sha256``: the hex SHA-256 of the payload
  and of the headers as they were stored, so that an auditor holding a copy
  can still show it is what was received;
* ``redacted_at``: when, and that a replay must never decode it again.

All three are NULL on a record that was not redacted. The record's key,
answer and fingerprint stay: duplicates are still found by them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("payload_sha256", "headers_sha256", "redacted_at")


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("payload_sha256", sa.Text(), nullable=True))
    op.add_column("deliveries", sa.Column("headers_sha256", sa.Text(), nullable=True))
    op.add_column(
        "deliveries",
        sa.Column("redacted_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    """The digests and times go; the emptied payloads stay empty."""
    with op.batch_alter_table("deliveries") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
