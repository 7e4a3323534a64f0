"""``idemsync history``, ``deliveries show`` and ``audit export`` give the
same answers as ``/audit``, read from the store without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from idemsync.cli import main
from infrastructure.settings import Settings
from tests.partner import Partner, auth, post
from web.state import app_state


@pytest.fixture
def cli(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> pytest.MonkeyPatch:
    """The CLI's environment: this test's database, a config with no source."""
    config = tmp_path / "idemsync.toml"
    config.write_text("")
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(config))
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COLUMNS", "250")
    return monkeypatch


def deliver(client: TestClient, partner: Partner) -> dict[str, str]:
    created = partner.order_created("ord_1")
    paid = partner.event("order.paid", order_id="ord_1", amount_cents=5000)
    for request in (created, paid, created):
        post(client, request)
    return {"created": created.key, "paid": paid.key}


def api(client: TestClient, path: str) -> object:
    response = client.get(path, headers=auth("auditor"))
    assert response.status_code == 200
    return response.json()


def test_history_prints_each_event_with_its_delivery(
    client: TestClient,
    partner: Partner,
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = deliver(client, partner)
    assert main(["history", "order", "ord_1"]) == 0
    out = capsys.readouterr().out
    for text in ("Tracked", "Created", "Paid", keys["created"], keys["paid"]):
        assert text in out


def test_history_as_json_lines_is_what_the_api_answers(
    client: TestClient,
    partner: Partner,
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deliver(client, partner)
    assert main(["history", "order", "ord_1", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    page = api(client, "/audit/aggregates/order/ord_1/events")
    assert isinstance(page, dict)
    assert lines == page["events"]


def test_history_of_an_unknown_object_fails_with_a_message(
    client: TestClient,
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["history", "order", "ord_none"]) == 1
    assert "no order 'ord_none'" in capsys.readouterr().err
    assert main(["history", "invoice", "inv_1"]) == 2


def test_deliveries_show_is_what_the_api_answers(
    client: TestClient,
    partner: Partner,
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = deliver(client, partner)
    app_state(client.app).sightings.flush()  # type: ignore[attr-defined]
    assert main(["deliveries", "show", "acme", keys["created"]]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == api(client, f"/audit/deliveries/acme/{keys['created']}")
    assert shown["attempts"] == 2
    assert main(["deliveries", "show", "acme", "msg_none"]) == 1


def test_audit_export_writes_the_global_log_as_ndjson_from_a_time(
    client: TestClient,
    partner: Partner,
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deliver(client, partner)
    assert main(["audit", "export"]) == 0
    captured = capsys.readouterr()
    everything = [json.loads(line) for line in captured.out.splitlines()]
    page = api(client, "/audit/events?limit=1000")
    assert isinstance(page, dict)
    assert everything == page["events"]
    assert f"exported {len(everything)} events" in captured.err
    middle = everything[len(everything) // 2]
    assert main(["audit", "export", "--since", middle["recorded_at"]]) == 0
    since = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert since[0]["recorded_at"] == middle["recorded_at"]
    assert since == [e for e in everything if e["recorded_at"] >= middle["recorded_at"]]
    assert main(["audit", "export", "--after", str(everything[-1]["position"])]) == 0
    assert capsys.readouterr().out == ""
