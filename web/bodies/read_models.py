"""What ``GET /views/...`` answers: rows of the read models, as
``web.views`` reads them (it sends the rows as they come from the tables;
``tests/integration/test_openapi.py`` checks them against these)."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

from domain.delivery import Outcome
from domain.rules import ORDER_LIFECYCLE
from web.bodies.base import Body, Count, Moment

OrderStatus = Annotated[str, Meta(extra_json_schema={"enum": list(ORDER_LIFECYCLE)})]


class Order(Body, kw_only=True):
    """A row of the `orders` read model."""

    namespace: str
    order_id: str
    customer_id: str | None
    status: OrderStatus
    currency: str | None
    total_cents: int | None
    paid_cents: int | None
    refunded_cents: Annotated[
        int | None,
        Meta(
            description="the larger of the refunded total stated by "
            "`order.refunded` and the sum of the refunds by id; null while "
            "nothing was refunded"
        ),
    ]
    disputed_cents: Annotated[int, Meta(description="the sum of the lost disputes")]
    carrier: str | None
    tracking_number: str | None
    version: Count
    updated_at: Moment


class Customer(Body, kw_only=True):
    """A row of the `customers` read model; a deleted customer's personal
    fields are null."""

    namespace: str
    customer_id: str
    email: str | None
    name: str | None
    phone: str | None
    address: Annotated[
        str | dict[str, Any] | None,
        Meta(description="text or an object, as the partner sent it"),
    ]
    deleted: bool
    version: Count
    updated_at: Moment


class RevenueRow(Body, kw_only=True):
    """Revenue of one namespace in one currency."""

    namespace: str
    currency: str
    paid_cents: int
    refunded_cents: int
    disputed_cents: Annotated[int, Meta(description="lost to disputes")]
    net_cents: Annotated[int, Meta(description="paid - refunded - disputed")]
    orders_paid: Count


class SourceStatsRow(Body, kw_only=True):
    """First outcomes of one source's deliveries."""

    source: str
    outcome: Outcome
    count: Count
    first_seen: Moment
    last_seen: Moment


class OrdersPage(Body, kw_only=True):
    """Orders by order_id, then namespace. Pass `next_cursor` as `cursor` for
    the next page; it is null on the last one."""

    items: list[Order]
    next_cursor: str | None


class RevenueList(Body, kw_only=True):
    """Every namespace and currency, in that order."""

    items: list[RevenueRow]


class SourceStatsList(Body, kw_only=True):
    """Every source and outcome."""

    items: list[SourceStatsRow]
