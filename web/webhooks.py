"""``POST /webhooks/{source}``: a partner's delivery in, the answer out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from domain.delivery import Answer, Outcome
from infrastructure.intake import Intake, Refused
from infrastructure.logs import FIELDS, log_decision
from infrastructure.metrics import Metrics
from web.responses import json_response, retry_later

log = logging.getLogger("idemsync.webhooks")


CLOSE = {"Connection": "close"}
"""On a 408 or 413 the rest of the body is not wanted: uvicorn closes the
connection after the answer instead of reading on to the next request."""


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes
    (before reading it whole when Content-Length already says so), and with
    408 unless it has all arrived within ``seconds`` (uvicorn has no such
    deadline: a client sending a byte now and then would hold on for ever)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, "payload_too_large", f"body over {limit} bytes")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refused(413, "payload_too_large", f"body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(
            408, "body_timeout", f"body not received within {seconds:g} s"
        ) from None
    except ClientDisconnect:
        raise Refused(
            400, "client_disconnected", "connection closed before the whole body"
        ) from None
    return b"".join(chunks)


def answer_response(answer: Answer) -> Response:
    status = 202 if answer.outcome is Outcome.PARKED else 200
    headers = (
        {"Idempotent-Replayed": "true"} if answer.outcome is Outcome.DUPLICATE else {}
    )
    return json_response(answer.to_json(), status, headers)


class Admission:
    """Counts the deliveries being decided and committed by this process and
    refuses one more than ``limit`` with a 503 at once, so that a slow store
    makes partners retry later instead of queueing requests without bound.
    A body is read before it is admitted: a client trickling bytes holds no
    place (``body_timeout_seconds`` bounds it). The event loop is one
    thread: the count needs no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.current = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        if self.current >= self.limit:
            raise Refused(503, "overloaded", "too many requests in progress; retry")
        self.current += 1
        try:
            yield
        finally:
            self.current -= 1


async def receive_webhook(request: Request) -> Response:
    intake: Intake = request.app.state.intake
    metrics: Metrics = request.app.state.metrics
    admission: Admission = request.app.state.admission
    name = request.path_params["source"]
    started = time.perf_counter()
    try:
        source = intake.source(name)
        body = await read_body(
            request,
            source.settings.max_body_bytes,
            request.app.state.settings.body_timeout_seconds,
        )
        with admission.admit():
            admitted = intake.admit(name, request.headers, body)
            recalled = intake.recall(admitted)  # a retry answered from memory
            if recalled is not None:
                answer = recalled
            else:
                answer = await run_in_threadpool(
                    intake.decide, admitted, request.headers, body
                )
    except Refused as refused:
        metrics.refusal(name, refused.error)
        log.warning(
            "refused delivery source=%r status=%d error=%s detail=%s",
            name[:100],
            refused.status,
            refused.error,
            refused.detail,
            extra={
                FIELDS: {
                    "source": metrics.source(name),
                    "status": refused.status,
                    "error": refused.error,
                }
            },
        )
        if refused.status == 503:
            return retry_later(request, refused.to_json())
        close = CLOSE if refused.status in (408, 413) else None
        return json_response(refused.to_json(), refused.status, close)
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
