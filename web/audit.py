"""Audit routes (specification §7), for the role ``auditor``.

- ``GET /audit/deliveries/{source}/{key}``: one delivery and its events.
- ``GET /audit/deliveries?source=&outcome=&since=&until=&limit=&cursor=``,
  and ``key=``, ``object=`` (the id of the delivery's first object),
  ``contains=`` (text of the raw payload), ``unresolved=1`` (nothing
  resolved it yet: with ``outcome=parked``, the parked queue).
- ``GET /audit/aggregates/{type}/{id}/events?namespace=&limit=&cursor=``.
- ``GET /audit/aggregates/{type}/{id}/chain?namespace=``: whether its events
  still hash to its ledger chain (``audit verify``'s first pass, one object).
- ``GET /audit/aggregates/{type}/{id}?namespace=&version=N`` or
  ``?as_of=<ISO 8601>`` (``namespace``: needed when the id is in several).
- ``GET /audit/events?after=&limit=``: the global log; NDJSON, streamed,
  with ``Accept: application/x-ndjson`` (then ``limit`` is optional).

The answers come from ``infrastructure.audit.trail.AuditTrail``, which the
CLI uses too; see docs/audit.md for their shapes and clocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from domain.delivery import FIRST_OUTCOMES
from infrastructure.access import Role
from infrastructure.audit.records import DeliveryFilter
from infrastructure.audit.trail import AmbiguousObject, AuditTrail, UnknownAggregate
from web import params
from web.access import requires
from web.bodies.answers import Error
from web.params import BadParameter
from web.responses import answer_read, json_response
from web.state import app_state

NDJSON = "application/x-ndjson"
MAX_SEARCH = 200
"""The longest text ``contains`` may search the payloads for."""
DELIVERIES_LIMIT = params.Bounds(1, 500, default=50)
EVENTS_LIMIT = params.Bounds(1, 1000, default=100)
"""``limit`` of an object's events, and of the log's page (not streamed)."""
STREAMED_LIMIT = params.Bounds(1, params.MAX_POSITION)
"""``limit`` of the log streamed as NDJSON: optional, all by default."""
AFTER = params.Bounds(0, params.MAX_POSITION, default=0)
VERSION = params.Bounds(1, params.MAX_POSITION)


async def _answer(
    request: Request, read: Callable[[AuditTrail], Any], missing: str
) -> Response:
    trail: AuditTrail = app_state(request.app).audit

    def answered() -> Any:
        try:
            return read(trail)
        except AmbiguousObject as several:
            raise BadParameter(str(several)) from several

    return await answer_read(request, answered, missing, not_found=(UnknownAggregate,))


@requires(Role.AUDITOR)
async def delivery(request: Request) -> Response:
    source, key = request.path_params["source"], request.path_params["key"]
    return await _answer(
        request,
        # No delivery has a NUL (PostgreSQL text cannot hold one): not found.
        lambda trail: None if "\x00" in source + key else trail.delivery(source, key),
        f"no delivery {key!r} from source {source!r}",
    )


def _delivery_page(trail: AuditTrail, query: dict[str, str]) -> dict[str, Any]:
    outcome = params.choice(query, "outcome", FIRST_OUTCOMES)
    where = DeliveryFilter(
        source=params.text(query, "source"),
        outcome=outcome,
        since=params.moment(query, "since"),
        until=params.moment(query, "until"),
        key=params.text(query, "key"),
        object_id=params.text(query, "object"),
        contains=_search_text(query),
        unresolved=params.flag(query, "unresolved"),
    )
    after = params.cursor(query)
    if after is not None and not _is_delivery_cursor(after):
        raise BadParameter("cursor is not one this server gave")
    page = trail.deliveries(where, after, DELIVERIES_LIMIT.limit(query))
    last = page.pop("next")
    page["next_cursor"] = None if last is None else params.encode_cursor(last)
    return page


def _search_text(query: dict[str, str]) -> str | None:
    contains = params.text(query, "contains")
    if contains is not None and not 1 <= len(contains) <= MAX_SEARCH:
        raise BadParameter(f"contains must be 1 to {MAX_SEARCH} characters")
    return contains


def _is_delivery_cursor(value: Any) -> bool:
    if not isinstance(value, list) or len(value) != 3:
        return False
    if not all(isinstance(part, str) for part in value):
        return False
    try:
        at = datetime.fromisoformat(value[0])
        at.replace(tzinfo=at.tzinfo or UTC).astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True


@requires(Role.AUDITOR)
async def deliveries(request: Request) -> Response:
    query = dict(request.query_params)
    return await _answer(request, lambda trail: _delivery_page(trail, query), "")


def _events_page(
    trail: AuditTrail, kind: str, object_id: str, query: dict[str, str]
) -> dict[str, Any] | None:
    after = params.cursor(query)
    if after is None:
        after = 0
    if not isinstance(after, int) or isinstance(after, bool):
        raise BadParameter("cursor is not one this server gave")
    if not AFTER.low <= after <= AFTER.high:
        raise BadParameter("cursor is not one this server gave")
    page = trail.events_of(
        kind,
        object_id,
        after,
        EVENTS_LIMIT.limit(query),
        params.text(query, "namespace"),
    )
    if page is not None and page["next_cursor"] is not None:
        page["next_cursor"] = params.encode_cursor(page["next_cursor"])
    return page


def _chain(
    trail: AuditTrail, kind: str, object_id: str, query: dict[str, str]
) -> dict[str, Any] | None:
    return trail.chain(kind, object_id, params.text(query, "namespace"))


def _state(
    trail: AuditTrail, kind: str, object_id: str, query: dict[str, str]
) -> dict[str, Any] | None:
    version = VERSION.read(query, "version")
    as_of = params.moment(query, "as_of")
    if version is not None and as_of is not None:
        raise BadParameter("give version or as_of, not both")
    return trail.state(
        kind,
        object_id,
        version=version,
        as_of=as_of,
        namespace=params.text(query, "namespace"),
    )


ObjectRead = Callable[[AuditTrail, str, str, dict[str, str]], Any]


def _of_object(read: ObjectRead) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of a read about one object (``/audit/aggregates/{type}/
    {id}...``): its type, id and query go to ``read``; None is a 404."""

    @requires(Role.AUDITOR)
    async def endpoint(request: Request) -> Response:
        kind, object_id = request.path_params["type"], request.path_params["id"]
        query = dict(request.query_params)
        point = " at that point" if ("version" in query or "as_of" in query) else ""
        return await _answer(
            request,
            lambda trail: read(trail, kind, object_id, query),
            f"no {kind} {object_id!r}{point}",
        )

    return endpoint


def _ndjson(events: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    encoder = msgspec.json.Encoder()
    for event in events:
        yield encoder.encode(event) + b"\n"


@requires(Role.AUDITOR)
async def events(request: Request) -> Response:
    query = dict(request.query_params)
    streaming = NDJSON in request.headers.get("accept", "")
    try:
        after = AFTER.read(query, "after")
        limit = (STREAMED_LIMIT if streaming else EVENTS_LIMIT).read(query, "limit")
    except BadParameter as bad:
        return json_response(Error(error="bad_parameter", message=str(bad)), 400)
    trail: AuditTrail = app_state(request.app).audit
    if streaming:
        return StreamingResponse(
            _ndjson(trail.log(after or 0, limit)), media_type=NDJSON
        )

    def page(trail: AuditTrail) -> dict[str, Any]:
        found = list(trail.log(after or 0, limit))
        full = limit is not None and len(found) == limit
        return {
            "events": found,
            "next_after": found[-1]["position"] if full else None,
        }

    return await _answer(request, page, "")


def routes() -> list[BaseRoute]:
    return [
        Route("/audit/deliveries", deliveries),
        Route("/audit/deliveries/{source}/{key:path}", delivery),
        Route("/audit/aggregates/{type}/{id}/events", _of_object(_events_page)),
        Route("/audit/aggregates/{type}/{id}/chain", _of_object(_chain)),
        Route("/audit/aggregates/{type}/{id}", _of_object(_state)),
        Route("/audit/events", events),
    ]
