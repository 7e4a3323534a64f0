"""``idemsync deliveries replay`` (specification §6): refunds that a mapping
without ``order.refunded`` answered ``ignored`` are applied, exactly once, once
the mapping is fixed; on both backends."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from domain.application import SyncService
from infrastructure.persistence.database import Database
from infrastructure.replay import Replayed, Replayer, summary
from infrastructure.settings import Settings
from infrastructure.sources import Source
from tests.partner import Partner, auth, post
from tests.read_models import caught_up, snapshot
from tests.store import Store
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
RESOLVED = "domain.receipt:Receipt.Resolved"


def refundless(settings: Settings) -> Settings:
    acme = settings.sources["acme"]
    old = msgspec.structs.replace(
        acme, mapping="tests.replay_mappings:map_without_refunds"
    )
    return dataclasses.replace(settings, sources={"acme": old})


def send_history(settings: Settings, partner: Partner) -> dict[str, str]:
    """Two paid orders and their refunds, sent under the old mapping; the
    keys by name."""
    requests = {
        "created_1": partner.order_created("ord_1"),
        "paid_1": partner.event("order.paid", order_id="ord_1", amount_cents=5000),
        "refund_1": partner.event(
            "order.refunded", order_id="ord_1", amount_cents=5000
        ),
        "created_2": partner.order_created("ord_2", currency="USD", total_cents=8000),
        "paid_2": partner.event("order.paid", order_id="ord_2", amount_cents=8000),
        "partial_2": partner.event(
            "order.refunded", order_id="ord_2", amount_cents=2000
        ),
        "full_2": partner.event("order.refunded", order_id="ord_2", amount_cents=8000),
        "invoice": partner.event("invoice.paid", invoice_id="in_1"),
    }
    with TestClient(create_app(refundless(settings))) as client:
        outcomes = {name: post(client, r)[1]["outcome"] for name, r in requests.items()}
    assert [name for name, o in outcomes.items() if o == "ignored"] == [
        "refund_1",
        "partial_2",
        "full_2",
        "invoice",
    ]
    return {name: request.key for name, request in requests.items()}


def replay(
    settings: Settings,
    outcome: str | None = None,
    dry_run: bool = False,
    since: datetime | None = None,
) -> dict[str, Replayed]:
    database = Database(settings.database_url)
    service = SyncService(env=database.eventsourcing_env())
    source = Source.build(settings.sources["acme"])
    try:
        replayer = Replayer(service, database.engine(), source, dry_run)
        results = [
            replayer.replay(k, b) for k, b in replayer.candidates(outcome, since)
        ]
    finally:
        service.close()
        database.close()
    return {result.key: result for result in results if result is not None}


def outcomes(results: dict[str, Replayed], keys: dict[str, str]) -> dict[str, Any]:
    names = {key: name for name, key in keys.items()}
    return {names[k]: (r.before, r.now) for k, r in results.items() if r.changed}


def test_ignored_refunds_are_applied_once_after_the_mapping_fix(
    settings: Settings, partner: Partner, store: Store
) -> None:
    keys = send_history(settings, partner)
    with TestClient(create_app(settings)) as client:
        results = replay(settings, outcome="ignored")
        assert summary(list(results.values())) == {
            "replayed": 4,
            "changed": 3,
            "unchanged": 1,
            "failed": 0,
        }
        assert outcomes(results, keys) == {
            name: ("ignored", "applied") for name in ("refund_1", "partial_2", "full_2")
        }
        caught_up(client)
        revenue = client.get("/views/revenue", headers=auth("reader"))
        revenue = revenue.json()["items"]
        assert [
            (r["currency"], r["refunded_cents"], r["net_cents"]) for r in revenue
        ] == [
            ("EUR", 5000, 0),
            ("USD", 8000, 0),
        ]
        order = client.get("/views/orders/ord_2", headers=auth("reader")).json()
        assert (order["status"], order["refunded_cents"]) == ("refunded", 8000)
    assert store.state("order", "ord_1")["status"] == "refunded"
    assert store.state("order", "ord_2")["values"]["refunded_cents"] == 8000
    record = store.delivery("acme", keys["partial_2"])
    assert (record["outcome"], record["resolution"]) == ("ignored", "applied")
    assert record["resolved_at"] is not None
    assert store.topics().count(RESOLVED) == 3

    events, models = store.count("idemsync_events"), snapshot(settings.database_url)
    for outcome in ("ignored", None):
        again = replay(settings, outcome=outcome)
        assert summary(list(again.values()))["changed"] == 0
    assert len(again) == len(keys)
    assert store.count("idemsync_events") == events
    with TestClient(create_app(settings)) as client:
        caught_up(client)
    assert snapshot(settings.database_url) == models


def test_a_dry_run_writes_nothing_and_since_selects_by_receive_time(
    settings: Settings, partner: Partner, store: Store
) -> None:
    keys = send_history(settings, partner)
    events = store.count("idemsync_events")
    records = {key: store.delivery("acme", key) for key in keys.values()}
    results = replay(settings, outcome="ignored", dry_run=True)
    assert outcomes(results, keys) == {
        name: ("ignored", "applied") for name in ("refund_1", "partial_2", "full_2")
    }
    assert store.count("idemsync_events") == events
    assert {key: store.delivery("acme", key) for key in keys.values()} == records
    assert store.state("order", "ord_1")["status"] == "paid"
    an_hour = timedelta(hours=1)
    assert replay(settings, since=datetime.now(UTC) + an_hour) == {}
    assert len(replay(settings, since=datetime.now(UTC) - an_hour, dry_run=True)) == 8


def run_cli(settings: Settings, secret: str, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "idemsync.toml"
    config.write_text(
        '[sources.acme]\nscheme = "standard-webhooks"\nsecrets = ["env:ACME_SECRET"]\n'
    )
    env = {
        **os.environ,
        "IDEMSYNC_CONFIG": str(config),
        "IDEMSYNC_DATABASE_URL": settings.database_url,
        "ACME_SECRET": secret,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "idemsync", "deliveries", "replay", *args]
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_the_replay_command_prints_what_changed_and_a_second_run_changes_nothing(
    settings: Settings, partner: Partner, secret: str, store: Store, tmp_path: Path
) -> None:
    keys = send_history(settings, partner)
    arguments = ("--source", "acme", "--outcome", "ignored")
    dry = run_cli(settings, secret, tmp_path, *arguments, "--dry-run")
    assert "would be" in dry and "dry run: nothing was written" in dry
    assert store.delivery("acme", keys["refund_1"])["resolution"] is None

    first = run_cli(settings, secret, tmp_path, *arguments)
    assert "replayed 4, changed 3, unchanged 1, failed 0" in first
    for name in ("refund_1", "partial_2", "full_2"):
        line = next(line for line in first.splitlines() if keys[name] in line)
        assert "ignored" in line and "applied" in line
    assert keys["invoice"] not in first
    assert store.delivery("acme", keys["full_2"])["resolution"] == "applied"

    second = run_cli(settings, secret, tmp_path, "--source", "acme")
    assert "replayed 8, changed 0, unchanged 8, failed 0" in second
