"""Retention (specification §6): delivery records older than their source's
``retention_days`` are pruned, the events never; a retry after the prune
changes nothing. On both backends."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from sqlalchemy import update
from starlette.testclient import TestClient

from infrastructure.persistence.database import Database
from infrastructure.persistence.deliveries import DELIVERIES, moment
from infrastructure.retention import prune
from infrastructure.settings import Settings
from tests.histories import history, schedule
from tests.partner import Partner, post
from tests.read_models import caught_up, snapshot
from tests.store import Store
from web.app import create_app
from web.state import app_state

ROOT = Path(__file__).resolve().parents[2]
NOT_APPLIED_AGAIN = {"stale", "duplicate", "ignored", "rejected"}


def backdate(database_url: str, keys: list[str], days: int) -> None:
    """Pretend the records of ``keys`` were received ``days`` ago."""
    database = Database(database_url)
    engine = database.engine()
    received = moment(engine, datetime.now(UTC) - timedelta(days=days))
    with engine.begin() as conn:
        conn.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.idempotency_key.in_(keys))
            .values(received_at=received)
        )
    database.close()


def test_after_pruning_every_record_the_events_remain_and_retries_change_nothing(
    settings: Settings, partner: Partner, store: Store
) -> None:
    events = history(seed=11, orders=8, customers=4)
    with TestClient(create_app(settings)) as client:
        for event in schedule(events, seed=11, duplicate_ratio=0.4):
            assert post(client, partner.sign(event.body, key=event.key))[0] in (
                200,
                202,
            )
        caught_up(client)
        models, logged = snapshot(settings.database_url), store.count("idemsync_events")
        assert store.count("deliveries") == len(events)

        later = datetime.now(UTC) + timedelta(days=31)
        engine = app_state(client.app).database.engine()  # type: ignore[attr-defined]
        counted = prune(engine, settings.sources, now=later, dry_run=True)
        assert store.count("deliveries") == len(events)
        pruned = prune(engine, settings.sources, now=later)
        assert [(p.source, p.count) for p in pruned] == [("acme", len(events))]
        assert pruned[0].count == counted[0].count
        assert store.count("deliveries") == 0
        assert store.count("idemsync_events") == logged

        for event in events:
            status, body, _ = post(client, partner.sign(event.body, key=event.key))
            assert (status, body["outcome"]) in {(200, o) for o in NOT_APPLIED_AGAIN}
        assert store.count("idemsync_events") == logged
        caught_up(client)
    assert snapshot(settings.database_url) == models


def test_each_source_keeps_its_records_for_its_own_retention(
    settings: Settings, partner: Partner, store: Store, secret: str, tmp_path: Path
) -> None:
    acme = settings.sources["acme"]
    brief = msgspec.structs.replace(acme, name="brief", retention_days=2)
    two = dataclasses.replace(settings, sources={"acme": acme, "brief": brief})
    with TestClient(create_app(two)) as client:
        keys = {}
        for source in ("acme", "brief"):
            for age in (0, 5, 40):
                request = partner.order_created(f"ord_{source}_{age}")
                post(client, request, source)
                keys[source, age] = request.key
    for (_, age), key in keys.items():
        backdate(settings.database_url, [key], age)

    config = tmp_path / "idemsync.toml"
    config.write_text(
        '[sources.acme]\nscheme = "standard-webhooks"\n'
        '[sources.brief]\nscheme = "standard-webhooks"\nretention_days = 2\n'
    )
    env = {
        **os.environ,
        "IDEMSYNC_CONFIG": str(config),
        "IDEMSYNC_DATABASE_URL": settings.database_url,
        "COLUMNS": "200",
    }

    def prune_command(*args: str) -> list[str]:
        command = [sys.executable, "-m", "idemsync", "deliveries", "prune", *args]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return [
            " ".join(line.replace("│", " ").split())
            for line in done.stdout.splitlines()
        ]

    dry = prune_command("--dry-run")
    assert any(line.startswith("acme 30") and line.endswith(" 1") for line in dry)
    assert any(line.startswith("brief 2") and line.endswith(" 2") for line in dry)
    assert "would delete 3 delivery records; events are never pruned" in dry
    assert store.count("deliveries") == 6
    assert "deleted 3 delivery records; events are never pruned" in prune_command()
    assert store.keys() == {
        ("acme", keys["acme", 0]),
        ("acme", keys["acme", 5]),
        ("brief", keys["brief", 0]),
    }


def test_serve_prunes_old_records_periodically(
    settings: Settings, partner: Partner, store: Store
) -> None:
    with TestClient(create_app(settings, prune_interval_seconds=0.1)) as client:
        requests = [partner.order_created(f"ord_{n}") for n in range(3)]
        for request in requests:
            post(client, request)
        backdate(settings.database_url, [r.key for r in requests[:2]], 31)
        deadline = time.monotonic() + 10
        while store.count("deliveries") > 1:
            assert time.monotonic() < deadline, "the periodic prune did not run"
            time.sleep(0.05)
    assert store.keys() == {("acme", requests[2].key)}
