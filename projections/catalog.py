"""The projections idemsync runs, by name."""

from __future__ import annotations

from projections.base import Projection
from projections.customers import CustomersProjection
from projections.orders import OrdersProjection
from projections.revenue import RevenueProjection
from projections.source_stats import SourceStatsProjection


def all_projections() -> dict[str, Projection]:
    projections: list[Projection] = [
        OrdersProjection(),
        CustomersProjection(),
        RevenueProjection(),
        SourceStatsProjection(),
    ]
    return {projection.name: projection for projection in projections}
