"""A revenue projection with a planted bug, for rebuild tests: it counts
every payment twice. Swapping it for ``RevenueProjection`` under the same
name is "deploying the fix"; a rebuild then repairs the totals."""

from __future__ import annotations

from projections.fold import Row
from projections.revenue import RevenueProjection


class DoubleCountingRevenue(RevenueProjection):
    """Adds ``paid_cents`` (and ``net_cents``) twice to the per-currency
    totals; the per-order table stays right."""

    @staticmethod
    def contribution(order: Row) -> dict[str, int]:
        counted = RevenueProjection.contribution(order)
        counted["paid_cents"] += order["paid_cents"]
        counted["net_cents"] += order["paid_cents"]
        return counted
