"""Snapshots of long-lived objects (orders and customers).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

``idemsync_snapshots`` is eventsourcing 9.5.6's aggregate-recorder table for
the purpose ``snapshots``, created exactly as the library would create it (the
application runs with ``CREATE_TABLE=n``): on PostgreSQL it is the library's
``idemsync_snapshots`` (application name + purpose; no notification id, same
storage options as the event table, the ``stored_event_uuid`` type of 0001);
on SQLite the library would call it ``stored_snapshots`` and
``IdemsyncSQLiteFactory`` names it like the event table. ``SyncService`` puts
one snapshot per ``snapshotting_intervals`` events of an object there, after
the events committed; it is a cache of committed events, with no ledger or
delivery rows, and dropping it loses nothing but speed.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRES_SNAPSHOTS = (
    "CREATE TABLE idemsync_snapshots ("
    "originator_id uuid NOT NULL, "
    "originator_version bigint NOT NULL, "
    "topic text, "
    "state bytea, "
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
SQLITE_SNAPSHOTS = (
    "CREATE TABLE idemsync_snapshots ("
    "originator_id TEXT, "
    "originator_version INTEGER, "
    "topic TEXT, "
    "state BLOB, "
    "PRIMARY KEY "
    "(originator_id, originator_version)) "
    "WITHOUT ROWID"
)


def upgrade() -> None:
    """Create the snapshot table (empty: snapshots come with new events)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_SNAPSHOTS)
    else:
        op.execute(SQLITE_SNAPSHOTS)


def downgrade() -> None:
    """Drop the snapshot table (the events, which it only caches, stay)."""
    op.execute("DROP TABLE idemsync_snapshots")
