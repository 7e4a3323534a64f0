"""``/admin/parked``: an operator settles a parked delivery by hand (role
``admin``; specification §13).

- ``POST /admin/parked/{source}/{key}/release?reason=``: decide its commands
  now, on their object, which must exist (409 ``not_yet_created`` if not).
- ``POST /admin/parked/{source}/{key}/discard?reason=``: drop it from the
  queue; it is never applied (resolution ``ignored``).

Both are recorded as events on the object (``HandedOn``, ``Discarded``)
naming the token that did it and the reason, and as the delivery's
``Resolved``; a delivery that is not waiting is a 409 ``not_parked``. The
queue itself is ``GET /audit/deliveries?outcome=parked&unresolved=1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from domain.application import SyncService
from domain.delivery import Resolution
from domain.errors import NotParked, NotYetCreated
from infrastructure.access import Role, Token
from infrastructure.pipeline import refusals
from infrastructure.refusals import Refusal
from web import params
from web.access import requires
from web.bodies.console import ParkedSettled
from web.params import BadParameter
from web.responses import json_response, retry_later
from web.state import app_state

Settle = Callable[[SyncService, str, str, str, str], Resolution]


def _settling(
    settle: Settle, action: Literal["release", "discard"]
) -> Callable[[Request], object]:
    @requires(Role.ADMIN)
    async def endpoint(request: Request) -> Response:
        source, key = request.path_params["source"], request.path_params["key"]
        token: Token = request.state.token
        try:
            reason = params.reason(dict(request.query_params))
        except BadParameter as bad:
            return json_response({"error": "bad_parameter", "message": str(bad)}, 400)
        service = app_state(request.app).services.service
        try:
            with refusals():
                resolution = await run_in_threadpool(
                    settle, service, source, key, token.name, reason
                )
        except NotParked as idle:
            return json_response({"error": "not_parked", "message": idle.reason}, 409)
        except NotYetCreated as waiting:
            body = {"error": "not_yet_created", "message": waiting.reason}
            return json_response(body, 409)
        except Refusal as busy:  # too much contention, or the store is down
            return retry_later(request, busy.to_json())
        return json_response(
            ParkedSettled(
                source=source,
                key=key,
                action=action,
                by=token.name,
                resolution=resolution.outcome.value,
                reason=resolution.reason,
            )
        )

    endpoint.__name__ = f"{action}_parked"
    return endpoint


def routes() -> list[BaseRoute]:
    return [
        Route(
            "/admin/parked/{source}/{key:path}/release",
            _settling(SyncService.release_parked, "release"),
            methods=["POST"],
        ),
        Route(
            "/admin/parked/{source}/{key:path}/discard",
            _settling(SyncService.discard_parked, "discard"),
            methods=["POST"],
        ),
    ]
