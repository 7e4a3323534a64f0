"""One schema per read model: the tables the projections define
(``projections.catalog.read_model_metadata``, also the migrations'
``target_metadata``) are exactly what the migrations build, on both
backends. Alembic's autogenerate comparison finds any column, type,
nullability, key or index that one has and the other has not."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from infrastructure.persistence.database import Database
from projections.catalog import only_read_models, read_model_metadata


def drift(database_url: str) -> list[Any]:
    """What autogenerate would write to bring the migrated database to the
    projections' tables (only theirs: the event log, the delivery log and
    the ledger have no projection)."""
    metadata = read_model_metadata()
    engine = create_engine(Database(database_url).sqlalchemy_url())
    try:
        with engine.connect() as conn:
            include_name = only_read_models(set(metadata.tables))
            context = MigrationContext.configure(
                conn, opts={"include_name": include_name, "compare_type": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_the_migrations_build_exactly_the_tables_the_projections_define(
    database_url: str,
) -> None:
    assert drift(database_url) == []


def test_every_read_model_table_is_compared() -> None:
    assert set(read_model_metadata().tables) == {
        "orders",
        "orders_money",
        "customers",
        "revenue",
        "revenue_orders",
        "source_stats",
        "projection_positions",
    }
