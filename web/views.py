"""Read-model views (specification §6): ``GET /views/...``.

Each needs a bearer token with the role ``reader`` or higher (``web.access``):
401 without a valid token, 403 for a role too low.

Each view reads a projection's table with SQLAlchemy Core (the table
definitions come from the projections themselves) in a worker thread. Times
are ISO 8601 strings in UTC on both backends. A bad parameter is a 400 that
says which and why; a store that does not answer (or a table being swapped by
a rebuild at that instant) is a 503 with ``Retry-After``, never a 500.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, MetaData, Select, Table, select, tuple_
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from domain.commands import CUSTOMER_FIELDS
from domain.rules import ORDER_LIFECYCLE
from infrastructure.access import Role
from projections.customers import CustomersProjection
from projections.orders import OrdersProjection
from projections.revenue import RevenueProjection
from projections.source_stats import SourceStatsProjection
from web import params
from web.access import requires
from web.params import BadParameter
from web.responses import answer_read
from web.state import app_state

ORDERS = OrdersProjection().define(MetaData())["orders"]
CUSTOMERS = CustomersProjection().define(MetaData())["customers"]
REVENUE = RevenueProjection().define(MetaData())["revenue"]
STATS = SourceStatsProjection().define(MetaData())["source_stats"]
ORDERS_LIMIT = params.Bounds(1, 500, default=50)
"""``limit`` of ``GET /views/orders``."""
NAMESPACES_LISTED = 20
"""At most this many namespaces are named in the 400 of an id that is in
several."""


def _iso(value: Any) -> Any:
    """A time as ISO 8601 in UTC (SQLite gives back naive UTC times)."""
    if not isinstance(value, datetime):
        return value
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _rows(engine: Engine, query: Select[Any]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [{name: _iso(value) for name, value in row.items()} for row in rows]


def _orders_page(engine: Engine, query: Mapping[str, str]) -> dict[str, Any]:
    """Orders by id, then namespace; ``namespace``, ``status`` and
    ``customer_id`` filter."""
    limit, after = ORDERS_LIMIT.limit(query), params.cursor(query)
    if after is not None and not _is_pair(after):
        raise BadParameter("cursor is not one this server gave")
    status = params.text(query, "status")
    customer_id = params.text(query, "customer_id")
    namespace = params.text(query, "namespace")
    key = tuple_(ORDERS.c.order_id, ORDERS.c.namespace)
    rows = (
        select(ORDERS).order_by(ORDERS.c.order_id, ORDERS.c.namespace).limit(limit + 1)
    )
    if status is not None:
        if status not in ORDER_LIFECYCLE:
            raise BadParameter(f"status must be one of {', '.join(ORDER_LIFECYCLE)}")
        rows = rows.where(ORDERS.c.status == status)
    if customer_id is not None:
        rows = rows.where(ORDERS.c.customer_id == customer_id)
    if namespace is not None:
        rows = rows.where(ORDERS.c.namespace == namespace)
    if after is not None:
        rows = rows.where(key > tuple_(*after))
    items = _rows(engine, rows)
    more = len(items) > limit
    last = items[limit - 1] if more else None
    cursor = (
        params.encode_cursor([last["order_id"], last["namespace"]]) if last else None
    )
    return {"items": items[:limit], "next_cursor": cursor}


def _is_pair(cursor: object) -> bool:
    return (
        isinstance(cursor, list)
        and len(cursor) == 2
        and all(isinstance(part, str) for part in cursor)
    )


def _by_id(
    engine: Engine, table: Table, value: str, query: Mapping[str, str]
) -> dict[str, Any] | None:
    """The row of the object ``value`` in the namespace the query names; in
    the only one that has it when it names none (several: a 400 that lists
    them). Never one with a NUL."""
    namespace = params.text(query, "namespace")
    if "\x00" in value:
        return None
    id_column = next(c for c in table.primary_key.columns if c.name != "namespace")
    wanted = select(table).where(id_column == value).limit(NAMESPACES_LISTED + 1)
    if namespace is not None:
        wanted = wanted.where(table.c.namespace == namespace)
    rows = _rows(engine, wanted)
    if len(rows) > 1:
        names = ", ".join(row["namespace"] for row in rows[:NAMESPACES_LISTED])
        more = ", …" if len(rows) > NAMESPACES_LISTED else ""
        raise BadParameter(
            f"{value!r} is in several namespaces ({names}{more}): "
            "name one with ?namespace="
        )
    return rows[0] if rows else None


def _customer(
    engine: Engine, customer_id: str, query: Mapping[str, str]
) -> dict[str, Any] | None:
    row = _by_id(engine, CUSTOMERS, customer_id, query)
    if row is None:
        return None
    row["deleted"] = bool(row["deleted"])
    if row["deleted"]:
        row.update(dict.fromkeys(CUSTOMER_FIELDS))
    elif isinstance(row["address"], str) and row["address"].startswith("{"):
        # An object was stored as JSON text; a text address may start with "{".
        with contextlib.suppress(ValueError):
            row["address"] = json.loads(row["address"])
    return row


async def _answer(
    request: Request, read: Callable[[Engine], Any], missing: str = ""
) -> Response:
    engine: Engine = app_state(request.app).database.engine()
    return await answer_read(request, lambda: read(engine), missing)


@requires(Role.READER)
async def orders(request: Request) -> Response:
    query = request.query_params
    return await _answer(request, lambda engine: _orders_page(engine, query))


def _one(
    what: str, read: Callable[[Engine, str, Mapping[str, str]], Any]
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of one object of a read model, ``/views/{what}s/{id}``
    (path parameter ``{what}_id``); None from ``read`` is a 404."""

    @requires(Role.READER)
    async def endpoint(request: Request) -> Response:
        object_id: str = request.path_params[f"{what}_id"]
        query = request.query_params
        return await _answer(
            request,
            lambda engine: read(engine, object_id, query),
            f"no {what} {object_id!r}",
        )

    return endpoint


def _order(
    engine: Engine, order_id: str, query: Mapping[str, str]
) -> dict[str, Any] | None:
    return _by_id(engine, ORDERS, order_id, query)


def _listing(
    query: Select[Any], namespaced: Table | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """A view of every row of ``query``, as ``{"items": [...]}``; of one
    namespace's rows of ``namespaced`` when the request names one."""

    def items(engine: Engine, given: Mapping[str, str]) -> dict[str, Any]:
        namespace = params.text(given, "namespace")
        rows = query
        if namespaced is not None and namespace is not None:
            rows = query.where(namespaced.c.namespace == namespace)
        return {"items": _rows(engine, rows)}

    @requires(Role.READER)
    async def view(request: Request) -> Response:
        given = request.query_params
        return await _answer(request, lambda engine: items(engine, given))

    return view


def routes() -> list[BaseRoute]:
    return [
        Route("/views/orders", orders),
        Route("/views/orders/{order_id}", _one("order", _order)),
        Route("/views/customers/{customer_id}", _one("customer", _customer)),
        Route(
            "/views/revenue",
            _listing(
                select(REVENUE).order_by(REVENUE.c.namespace, REVENUE.c.currency),
                REVENUE,
            ),
        ),
        Route(
            "/views/sources",
            _listing(select(STATS).order_by(STATS.c.source, STATS.c.outcome)),
        ),
    ]
