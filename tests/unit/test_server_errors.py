"""The 500 that ``idemsync serve``'s protocol sends for an app that failed
before answering (``web/transport.py``): JSON, where uvicorn's own is
text/plain. Starlette answers its own errors, so a real server never
reaches this path in the tests over a socket; here the wrapper is called
as uvicorn calls the app."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from starlette.types import Message, Receive, Scope, Send

from web.transport import json_server_errors

SCOPE: Scope = {"type": "http", "method": "POST", "path": "/webhooks/acme"}


async def nothing() -> Message:
    return {"type": "http.disconnect"}


def call(app: object) -> tuple[list[Message], BaseException | None]:
    """The messages ``app`` (wrapped) sent, and what it raised."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    wrapped = json_server_errors(app, logging.getLogger("test"))  # type: ignore[arg-type]

    async def run() -> None:
        await wrapped(SCOPE, nothing, send)

    try:
        asyncio.run(run())
    except Exception as error:
        return sent, error
    return sent, None


def assert_json_500(sent: list[Message]) -> None:
    start, body = sent
    assert start["status"] == 500
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"connection"] == b"close"
    assert int(headers[b"content-length"]) == len(body["body"])
    assert json.loads(body["body"])["error"] == "internal_error"
    assert body["more_body"] is False


def test_an_app_that_raises_before_answering_gets_a_json_500() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("bug")

    sent, raised = call(failing)

    assert_json_500(sent)
    assert isinstance(raised, RuntimeError)  # for uvicorn to log, then close


def test_an_app_that_returns_without_answering_gets_a_json_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    sent, raised = call(silent)

    assert_json_500(sent)
    assert raised is None
    assert "returned without starting response" in caplog.text


def test_an_app_that_fails_after_answering_is_not_answered_twice() -> None:
    async def late(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("bug")

    sent, raised = call(late)

    assert [message["type"] for message in sent] == ["http.response.start"]
    assert isinstance(raised, RuntimeError)
