"""Namespaces: a partner's object is (namespace, type, id).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Until now every source wrote into one space of objects, so two sources that
both sent order ``1001`` wrote into the same order. From now on a source
writes into its namespace: its own name unless its configuration names a
shared one. The objects already stored keep their ids; they are in the
namespace ``default`` (``domain.namespaces.DEFAULT_NAMESPACE``), whose ids
are derived as before.

* ``source_namespaces`` pins, for every source that wrote before (it appears
  in the ledger or the delivery log), the namespace ``default``: without a
  ``namespace`` line such a source goes on writing where its objects are
  (``idemsync serve`` and ``config check`` say so), instead of starting an
  empty namespace of its own name;
* ``namespaces`` lists every namespace a server was started with (and
  ``default``), so that an object asked for by its id alone is looked for in
  each (``AuditTrail``), whatever the configuration of the one who asks;
* ``event_audit`` gains ``namespace`` (``default`` for every existing row;
  the hash of a row covers its namespace only when it is not ``default``, so
  the existing chains verify unchanged);
* the read models (``orders``, ``orders_money``, ``customers``,
  ``revenue_orders``, ``revenue``) are keyed by namespace too: each is made
  again with the new key and its rows copied into namespace ``default``,
  which is what a rebuild from the log gives.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT = "default"

READ_MODELS: dict[str, tuple[str, ...]] = {
    "orders": ("order_id",),
    "orders_money": ("order_id",),
    "customers": ("customer_id",),
    "revenue_orders": ("order_id",),
    "revenue": ("currency",),
}
"""Each read-model table and its key before namespaces."""
NEW_KEYS: dict[str, tuple[str, ...]] = {
    "orders": ("order_id", "namespace"),
    "orders_money": ("order_id", "namespace"),
    "customers": ("customer_id", "namespace"),
    "revenue_orders": ("order_id", "namespace"),
    "revenue": ("namespace", "currency"),
}
"""And after: an object's id first, so that an id whose namespace is not
given is found by the key; revenue by namespace, then currency."""

ORDER_INDEXES = {
    "ix_orders_status": ("status", "order_id", "namespace"),
    "ix_orders_customer": ("customer_id", "order_id", "namespace"),
}


def _namespace() -> sa.Column[str]:
    return sa.Column("namespace", sa.Text(), nullable=False, server_default=DEFAULT)


def _rekey(table: str, new_key: tuple[str, ...]) -> None:
    """Make ``table`` again with a ``namespace`` column and the primary key
    ``new_key``, its rows copied into namespace ``default``."""
    bind = op.get_bind()
    old = sa.Table(table, sa.MetaData(), autoload_with=bind)
    old_key = sa.inspect(bind).get_pk_constraint(table).get("name")
    columns = [
        sa.Column(
            column.name,
            column.type,
            nullable=column.nullable,
            server_default=column.server_default,
        )
        for column in old.columns
    ]
    listed = ", ".join(column.name for column in old.columns)
    op.rename_table(table, f"{table}_before_0007")
    if bind.dialect.name == "postgresql" and old_key:
        # The new key takes the old one's name (``<table>_pkey``, as a
        # rebuild's swap leaves it).
        op.drop_constraint(old_key, f"{table}_before_0007", type_="primary")
    op.create_table(
        table,
        sa.Column("namespace", sa.Text(), nullable=False),
        *columns,
        sa.PrimaryKeyConstraint(
            *new_key,
            name=f"{table}_pkey" if bind.dialect.name == "postgresql" else None,
        ),
    )
    op.execute(
        f"INSERT INTO {table} (namespace, {listed}) "
        f"SELECT '{DEFAULT}', {listed} FROM {table}_before_0007"
    )
    op.drop_table(f"{table}_before_0007")


def upgrade() -> None:
    op.create_table(
        "source_namespaces",
        sa.Column("source", sa.Text(), primary_key=True),
        sa.Column("namespace", sa.Text(), nullable=False),
    )
    op.execute(
        "INSERT INTO source_namespaces (source, namespace) "
        f"SELECT source, '{DEFAULT}' FROM ("
        "SELECT source FROM event_audit WHERE source IS NOT NULL "
        "UNION SELECT source FROM deliveries) AS wrote"
    )
    op.create_table("namespaces", sa.Column("name", sa.Text(), primary_key=True))
    op.execute(f"INSERT INTO namespaces (name) VALUES ('{DEFAULT}')")
    op.add_column("event_audit", _namespace())
    for name in ORDER_INDEXES:
        op.drop_index(name, table_name="orders")
    for table, key in NEW_KEYS.items():
        _rekey(table, key)
    for name, columns in ORDER_INDEXES.items():
        op.create_index(name, "orders", list(columns))


def downgrade() -> None:
    """Back to one space of objects: only a store whose objects are all in
    ``default`` can go back (objects of other namespaces would collide)."""
    bind = op.get_bind()
    others = bind.execute(
        sa.text(f"SELECT count(*) FROM event_audit WHERE namespace <> '{DEFAULT}'")
    ).scalar()
    if others:
        raise RuntimeError(
            f"{others} events belong to namespaces other than {DEFAULT!r}: "
            "this store cannot go back to before namespaces"
        )
    for name in ORDER_INDEXES:
        op.drop_index(name, table_name="orders")
    for table, key in READ_MODELS.items():
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_column("namespace")
            batch.create_primary_key(f"pk_{table}", list(key))
    op.create_index("ix_orders_status", "orders", ["status", "order_id"])
    op.create_index("ix_orders_customer", "orders", ["customer_id", "order_id"])
    with op.batch_alter_table("event_audit") as batch:
        batch.drop_column("namespace")
    op.drop_table("namespaces")
    op.drop_table("source_namespaces")
