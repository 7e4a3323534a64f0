"""``POST /admin/customers/{customer_id}/erase?namespace=&reason=``: erase a
customer's personal data (role ``admin``), as ``idemsync erase customer``
does (infrastructure/privacy/erasure.py, docs/privacy.md).

The erasure names the token that asked and the reason, never a value;
asking again finishes an interrupted one and answers ``recorded: false``.
Without ``namespace`` the customer is looked for in the only namespace the
sources write into; with several, ``namespace`` is required (400); one no
source writes into is a 404.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from infrastructure.access import Role, Token
from infrastructure.pipeline import refusals
from infrastructure.privacy.erasure import NoSuchNamespace
from infrastructure.refusals import Refusal
from web import params
from web.access import requires
from web.bodies.console import CustomerErased
from web.params import BadParameter
from web.responses import json_response, retry_later
from web.state import app_state


@requires(Role.ADMIN)
async def erase_customer(request: Request) -> Response:
    customer_id = request.path_params["customer_id"]
    token: Token = request.state.token
    eraser = app_state(request.app).services.eraser
    try:
        if "\x00" in customer_id:
            raise BadParameter("customer_id must not contain a NUL character")
        query = dict(request.query_params)
        reason = params.reason(query)
        given = params.text(query, "namespace")
        namespace = eraser.namespace_for(given)
    except (BadParameter, ValueError) as bad:
        return json_response({"error": "bad_parameter", "message": str(bad)}, 400)
    except NoSuchNamespace as unknown:
        return json_response({"error": "not_found", "message": str(unknown)}, 404)
    by = f"token:{token.name}"
    try:
        with refusals():
            erasure = await run_in_threadpool(
                eraser.erase, namespace, customer_id, by, reason
            )
    except Refusal as busy:  # too much contention, or the store is down
        return retry_later(request, busy.to_json())
    return json_response(CustomerErased(by=by, **erasure.to_json()))


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/customers/{customer_id}/erase", erase_customer, methods=["POST"])
    ]
