"""Refunds and disputes by the partner's id in the read models.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

Orders now carry refunds and closed disputes by the partner's id
(``order.refund_recorded``, ``order.dispute_closed``); what an order
refunded is the larger of the total stated by ``order.refunded`` and the sum
of its refunds by id, what it lost to disputes the sum of its lost disputes
(``Order.money_of``). The read models follow:

* ``orders`` gains ``disputed_cents`` (0 for every existing row);
  ``orders_money`` keeps, per order, the fields that derivation reads: the
  stated total (``stated_refunded_cents``) and the fields by id (``by_id``,
  JSON). An existing order's stated total is its ``refunded_cents``, which
  until now was exactly the stated total (null when none was stated: such an
  order gets no row, as a rebuild would give none);
* ``revenue`` gains ``disputed_cents`` (0), and ``net_cents`` becomes paid
  less refunded less disputed (unchanged while nothing was disputed);
  ``revenue_orders`` gains ``disputed_cents`` (0), ``stated_refunded_cents``
  (its ``refunded_cents``, the stated total or 0 until now) and ``by_id``
  (``{}``).

So an upgraded store's read models are what a rebuild from its log gives.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _zero(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")


def upgrade() -> None:
    """Add the columns (0 for existing rows), create ``orders_money`` and
    fill both per-order tables with the stated totals."""
    op.add_column("orders", _zero("disputed_cents"))
    op.create_table(
        "orders_money",
        sa.Column("order_id", sa.Text(), primary_key=True),
        sa.Column("stated_refunded_cents", sa.BigInteger()),
        sa.Column("by_id", sa.Text(), nullable=False),
    )
    op.execute(
        "INSERT INTO orders_money (order_id, stated_refunded_cents, by_id) "
        "SELECT order_id, refunded_cents, '{}' FROM orders "
        "WHERE refunded_cents IS NOT NULL"
    )
    op.add_column("revenue", _zero("disputed_cents"))
    op.add_column("revenue_orders", _zero("disputed_cents"))
    op.add_column("revenue_orders", _zero("stated_refunded_cents"))
    op.add_column(
        "revenue_orders",
        sa.Column("by_id", sa.Text(), nullable=False, server_default="{}"),
    )
    op.execute("UPDATE revenue_orders SET stated_refunded_cents = refunded_cents")


def downgrade() -> None:
    """Drop what ``upgrade`` added (refunds and disputes by id are then no
    longer shown; the events keep them)."""
    with op.batch_alter_table("revenue_orders") as batch:
        batch.drop_column("by_id")
        batch.drop_column("stated_refunded_cents")
        batch.drop_column("disputed_cents")
    with op.batch_alter_table("revenue") as batch:
        batch.drop_column("disputed_cents")
    op.drop_table("orders_money")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("disputed_cents")
