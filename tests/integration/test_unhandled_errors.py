"""An exception no route caught is answered as JSON, like every other answer
(Starlette's own answer is a text/plain 500), and its traceback goes to the
log, never to the client."""

from __future__ import annotations

import logging

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from web.app import create_app


async def boom(request: Request) -> Response:
    raise RuntimeError("secret internals: postgresql://user:pw@db/idemsync")


def test_an_unhandled_exception_is_a_json_500_without_its_details(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)
    app.router.routes.append(Route("/boom", boom))
    with (
        caplog.at_level(logging.ERROR, logger="idemsync"),
        TestClient(app, raise_server_exceptions=False) as client,
    ):
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "internal_error",
        "message": "the server failed; retry",
    }
    assert "secret internals" not in response.text
    assert "secret internals" in caplog.text
