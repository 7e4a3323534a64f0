"""``POST /webhooks/{source}``: a partner's delivery in, the answer out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from domain.delivery import Answer, Outcome
from infrastructure.logs import FIELDS, log_decision
from infrastructure.refusals import (
    Busy,
    MissingKey,
    PayloadTooLarge,
    Refusal,
    StoreUnavailable,
    UnknownSource,
    UnreadablePayload,
    Unsigned,
)
from web.responses import json_response, retry_later
from web.state import app_state

log = logging.getLogger("idemsync.webhooks")


CLOSE = {"Connection": "close"}
"""On a 408 or 413 the rest of the body is not wanted: uvicorn closes the
connection after the answer instead of reading on to the next request."""


class BodyTimeout(Refusal):
    """The body did not arrive whole in time (HTTP only)."""

    error = "body_timeout"


class ClientDisconnected(Refusal):
    """The client hung up before its whole body (HTTP only)."""

    error = "client_disconnected"


STATUS: Mapping[type[Refusal], int] = {
    UnknownSource: 404,
    PayloadTooLarge: 413,
    Unsigned: 401,
    MissingKey: 400,
    UnreadablePayload: 400,
    BodyTimeout: 408,
    ClientDisconnected: 400,
    Busy: 503,
    StoreUnavailable: 503,
}
"""The HTTP status of each refusal: chosen here, and only here."""


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The raw body, refused as too large as soon as it passes ``limit``
    bytes (before reading it whole when Content-Length already says so), and
    as late unless it has all arrived within ``seconds`` (uvicorn has no such
    deadline: a client sending a byte now and then would hold on for ever)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body over {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"body not received within {seconds:g} s") from None
    except ClientDisconnect:
        raise ClientDisconnected("connection closed before the whole body") from None
    return b"".join(chunks)


def answer_response(answer: Answer) -> Response:
    status = 202 if answer.outcome is Outcome.PARKED else 200
    headers = (
        {"Idempotent-Replayed": "true"} if answer.outcome is Outcome.DUPLICATE else {}
    )
    return json_response(answer.to_json(), status, headers)


def refusal_response(request: Request, refused: Refusal) -> Response:
    status = STATUS[type(refused)]
    if status == 503:
        return retry_later(request, refused.to_json())
    close = CLOSE if status in (408, 413) else None
    return json_response(refused.to_json(), status, close)


async def receive_webhook(request: Request) -> Response:
    state = app_state(request.app)
    metrics = state.metrics
    name = request.path_params["source"]
    started = time.perf_counter()
    try:
        source = state.pipeline.source(name)
        body = await read_body(
            request,
            source.settings.max_body_bytes,
            state.settings.server.body_timeout_seconds,
        )
        with state.admission.admit():
            answer = await state.pipeline.answer(source, request.headers, body)
    except Refusal as refused:
        metrics.refusal(name, refused.error)
        log.warning(
            "refused delivery source=%r status=%d error=%s detail=%s",
            name[:100],
            STATUS[type(refused)],
            refused.error,
            refused.detail,
            extra={
                FIELDS: {
                    "source": metrics.source(name),
                    "status": STATUS[type(refused)],
                    "error": refused.error,
                }
            },
        )
        return refusal_response(request, refused)
    except Exception:
        # A bug, not the partner's fault: nothing was stored (the transaction
        # rolled back), so ask for a retry instead of answering 500.
        metrics.refusal(name, "internal_error")
        log.exception("failed delivery source=%r", name[:100])
        return retry_later(
            request, {"error": "internal_error", "message": "not stored; retry"}
        )
    seconds = time.perf_counter() - started
    try:
        metrics.answered(answer, seconds, datetime.now(UTC))
        log_decision(answer, seconds)
    except Exception:
        # The delivery is committed: its answer goes out whatever happens to
        # the counting.
        log.exception("counting delivery source=%r failed", name[:100])
    return answer_response(answer)
