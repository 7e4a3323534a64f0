"""Subject keys: one data key per data subject, wrapped by the master key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

``subject_keys`` holds each data subject's key for its personal fields,
wrapped by the master key (never stored here), and the time it was erased
(``infrastructure/privacy/store.py``). Nothing reads or writes it yet but
that module and its tests.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subject_keys",
        sa.Column("subject", sa.Text(), primary_key=True),
        sa.Column("master_key_id", sa.Text(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary()),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.Column("erased_at", sa.Text()),
    )


def downgrade() -> None:
    op.drop_table("subject_keys")
