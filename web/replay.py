"""``POST /admin/replay``: decide a source's stored deliveries again with
today's mapping (``infrastructure.replay``, as ``idemsync deliveries
replay``), for the role ``admin``; ``dry_run=1`` decides and writes nothing.

- ``source`` (required), ``outcome`` (the current one: the resolution, else
  the first answer), ``since`` (received at or after) choose the deliveries.
- The answer lists every delivery replayed, before and now, and the counts.

It runs in the request, so it is bounded: more than ``MAX_REPLAYED``
deliveries is a 400 that says to narrow it (or use the CLI, which has no
bound and shows a progress bar). Each replay that writes is recorded as the
delivery's ``Resolved`` and the events it causes; who asked is in the answer
and the server log (``replay by NAME``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from domain.delivery import FIRST_OUTCOMES
from infrastructure.access import Role, Token
from infrastructure.pipeline import refusals
from infrastructure.refusals import Refusal, UnknownSource
from infrastructure.replay import Replayer, summary
from web import params
from web.access import requires
from web.bodies.console import ReplayCounts, ReplayedDelivery, ReplayReport
from web.params import BadParameter
from web.responses import json_response, retry_later
from web.state import app_state

log = logging.getLogger("idemsync.replay")

MAX_REPLAYED = 1000


def _replay(request: Request, token: Token) -> ReplayReport:
    query = dict(request.query_params)
    name = params.text(query, "source")
    if not name:
        raise BadParameter("source is required")
    outcome = params.choice(query, "outcome", FIRST_OUTCOMES)
    since = params.moment(query, "since")
    dry_run = params.flag(query, "dry_run")
    state = app_state(request.app)
    source = state.pipeline.source(name)
    replayer = Replayer(
        state.services.service, state.database.engine(), source, dry_run
    )
    candidates = replayer.candidates(outcome, since)
    if len(candidates) > MAX_REPLAYED:
        raise BadParameter(
            f"{len(candidates)} deliveries match, more than {MAX_REPLAYED}: "
            "narrow with outcome or since, or use `idemsync deliveries replay`"
        )
    log.info(
        "replay by %s source=%s outcome=%s dry_run=%s deliveries=%d",
        token.name,
        name,
        outcome,
        dry_run,
        len(candidates),
    )
    results = [r for k, b in candidates if (r := replayer.replay(k, b)) is not None]
    return ReplayReport(
        source=name,
        dry_run=dry_run,
        by=token.name,
        counts=ReplayCounts(**summary(results)),
        deliveries=[ReplayedDelivery(**asdict(r)) for r in results],
    )


@requires(Role.ADMIN)
async def replay(request: Request) -> Response:
    token: Token = request.state.token
    try:
        with refusals():
            body = await run_in_threadpool(_replay, request, token)
    except BadParameter as bad:
        return json_response({"error": "bad_parameter", "message": str(bad)}, 400)
    except UnknownSource as unknown:
        return json_response({"error": "not_found", "message": str(unknown)}, 404)
    except Refusal as busy:  # too much contention, or the store is down
        return retry_later(request, busy.to_json())
    return json_response(body)


def routes() -> list[BaseRoute]:
    return [Route("/admin/replay", replay, methods=["POST"])]
