"""The projections idemsync runs, by name."""

from __future__ import annotations

from sqlalchemy import Engine

from domain.application import SyncService
from infrastructure.settings import Settings
from projections.base import Projection
from projections.customers import CustomersProjection
from projections.orders import OrdersProjection
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


def runner_for(
    service: SyncService, engine: Engine, settings: Settings
) -> ProjectionRunner:
    """The runner of every projection, as ``[projections]`` configures it."""
    return ProjectionRunner(
        service,
        engine,
        all_projections(),
        batch_size=settings.projection_batch_size,
        poll_seconds=settings.projection_poll_seconds,
    )
