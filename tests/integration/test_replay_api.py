"""``POST /admin/replay`` (the console's replay), on both backends: after a
mapping fix, a dry run lists what would change and writes nothing, the real
run changes exactly that, a second run changes nothing; it is bounded, and
only ``admin`` may run it."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

import web.replay
from infrastructure.settings import Settings
from tests.integration.test_delivery_replay import send_history
from tests.partner import Partner, auth, post
from web.app import create_app


def run(client: TestClient, role: str = "admin", **query: str) -> tuple[int, Any]:
    response = client.post("/admin/replay", params=query, headers=auth(role))
    return response.status_code, response.json()


def changed(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        d["key"]: (d["before"], d["now"]) for d in body["deliveries"] if d["changed"]
    }


def test_a_dry_run_shows_what_the_fixed_mapping_changes_then_the_run_does_it(
    settings: Settings, partner: Partner
) -> None:
    keys = send_history(settings, partner)
    refunds = {keys[name] for name in ("refund_1", "partial_2", "full_2")}
    with TestClient(create_app(settings)) as client:
        status, dry = run(client, source="acme", outcome="ignored", dry_run="1")
        assert status == 200, dry
        assert (dry["dry_run"], dry["by"]) == (True, "test-admin")
        assert dry["counts"] == {
            "replayed": 4,
            "changed": 3,
            "unchanged": 1,
            "failed": 0,
        }
        assert set(changed(dry)) == refunds
        assert {v for v in changed(dry).values()} == {("ignored", "applied")}
        assert (
            run(client, source="acme", outcome="applied")[1]["counts"]["replayed"] == 4
        ), "the dry run wrote nothing: 4 applied as before"

        status, done = run(client, source="acme", outcome="ignored")
        assert status == 200 and done["dry_run"] is False
        assert changed(done) == changed(dry)
        again = run(client, source="acme", outcome="ignored")[1]
        assert again["counts"]["replayed"] == 1 and changed(again) == {}


def test_replay_is_bounded_admin_only_and_names_its_source(
    client: TestClient, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(client, role="auditor", source="acme")[0] == 403
    status, body = run(client)
    assert (status, body["message"]) == (400, "source is required")
    assert run(client, source="nowhere")[0] == 404
    assert run(client, source="acme", outcome="duplicate")[0] == 400
    assert run(client, source="acme", dry_run="maybe")[0] == 400
    assert run(client, source="acme", since="yesterday")[0] == 400
    assert post(client, partner.order_created("ord_1"))[1]["outcome"] == "applied"
    assert run(client, source="acme", dry_run="1")[1]["counts"]["replayed"] == 1
    monkeypatch.setattr(web.replay, "MAX_REPLAYED", 0)
    status, body = run(client, source="acme", dry_run="1")
    assert status == 400
    assert body["message"].startswith("1 deliveries match, more than 0")
