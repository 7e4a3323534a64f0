"""A revenue projection with a planted bug, for rebuild tests: it counts
every payment twice. Swapping it for ``RevenueProjection`` under the same
name is "deploying the fix"; a rebuild then repairs the totals."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table

from projections.revenue import RevenueProjection


class DoubleCountingRevenue(RevenueProjection):
    """Adds ``paid_cents`` (and ``net_cents``) twice to the per-currency
    totals; the per-order table stays right."""

    @staticmethod
    def _add(
        conn: Connection, revenue: Table, order: dict[str, Any], sign: int
    ) -> None:
        RevenueProjection._add(conn, revenue, order, sign)
        paid_only = {**order, "refunded_cents": 0}
        statement = revenue.update().where(revenue.c.currency == order["currency"])
        conn.execute(
            statement.values(
                paid_cents=revenue.c.paid_cents + sign * paid_only["paid_cents"],
                net_cents=revenue.c.net_cents + sign * paid_only["paid_cents"],
            )
        )
