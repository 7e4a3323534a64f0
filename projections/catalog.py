"""The projections idemsync runs, by name."""

from __future__ import annotations

from collections.abc import Callable, Collection

from sqlalchemy import Engine, MetaData

from domain.application import SyncService
from infrastructure.settings import Settings
from projections.base import Projection
from projections.customers import CustomersProjection
from projections.orders import OrdersProjection
from projections.positions import positions
from projections.revenue import RevenueProjection
from projections.runner import ProjectionRunner
from projections.source_stats import SourceStatsProjection


def all_projections() -> dict[str, Projection]:
    projections: list[Projection] = [
        OrdersProjection(),
        CustomersProjection(),
        RevenueProjection(),
        SourceStatsProjection(),
    ]
    return {projection.name: projection for projection in projections}


def read_model_metadata() -> MetaData:
    """The tables of every read model, as the projections define them, and
    the runner's positions: the one schema the migrations must match
    (``migrations/env.py``'s ``target_metadata``; a test compares them)."""
    metadata = MetaData()
    for projection in all_projections().values():
        projection.define(metadata)
    positions.to_metadata(metadata)
    return metadata


def only_read_models(tables: Collection[str]) -> Callable[..., bool]:
    """Alembic's ``include_name`` for comparing ``tables`` alone: the event
    log, the delivery log and the ledger are migrated by hand and have no
    metadata to compare with."""

    def include_name(name: str | None, type_: str, parent: object) -> bool:
        return type_ != "table" or name in tables

    return include_name


def runner_for(
    service: SyncService, engine: Engine, settings: Settings
) -> ProjectionRunner:
    """The runner of every projection, as ``[projections]`` configures it."""
    return ProjectionRunner(
        service,
        engine,
        all_projections(),
        batch_size=settings.projections.batch_size,
        poll_seconds=settings.projections.poll_seconds,
    )
