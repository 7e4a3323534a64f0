"""Fingerprints of deliveries whose idempotency key is not signed.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05

GitHub, Shopify, the generic ``hmac-sha256`` scheme with a header key, and
``none`` sources take their key from a header that the signature does not
cover: a captured request re-sent under a fresh key would be a new delivery.
``delivery_fingerprints`` keeps, per source, a digest of the bytes each such
delivery's signature covered, with the key and the first answer; a delivery
whose fingerprint is here is a duplicate of that first one. Its rows are
written in the same transaction as the delivery record and, like receipts,
are never pruned by retention. Stores written before this revision have no
fingerprints: their deliveries stay duplicates by key, and re-sent old events
are ``stale`` by position.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``delivery_fingerprints``."""
    op.create_table(
        "delivery_fingerprints",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("source", "digest", name="pk_delivery_fingerprints"),
    )


def downgrade() -> None:
    """Drop ``delivery_fingerprints``."""
    op.drop_table("delivery_fingerprints")
