"""The admin status when the store stops answering: 503 with
``Retry-After``, never a 500 (the views and the audit routes have their own
tests of this)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from tests.partner import auth
from web.state import app_state


def test_the_projection_status_answers_503_when_the_store_fails(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> None:
        raise OperationalError("SELECT position", {}, Exception("server closed"))

    runner = app_state(client.app).runner
    monkeypatch.setattr(runner, "status", down)
    response = client.get("/admin/projections", headers=auth("admin"))
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"] == "store_unavailable"
