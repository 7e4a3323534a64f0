"""An existing store keeps working after the upgrade.

Each folder of ``tests/fixtures/stores/`` is a store written by an earlier
release (see its README.md). On both backends it is loaded into a fresh
database and migrated to today's head revision (``idemsync db upgrade``);
then it must show what it showed when it was written (objects, read models,
delivery records, receipts, ``audit verify``: ``expected.json``), rebuild
every projection to the rows it holds, and keep working: a retry is answered
with its recorded first answer (from the receipt when retention pruned the
record), and a new delivery is applied, chained on in the audit ledger and
projected.

A release that changes the stored format adds a migration and a folder
(``tests/fixtures/stores/generate.py``); see docs/design.md, "Upgrading a
store".
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from starlette.testclient import TestClient

from domain.namespaces import DEFAULT_NAMESPACE
from infrastructure.audit.checkpoints import Checkpointer
from infrastructure.audit.verify import verify
from infrastructure.config_tables import ProjectionsTable
from infrastructure.persistence.database import Database
from infrastructure.settings import Settings
from infrastructure.source_settings import SourceSettings
from tests.conftest import PG_SERVER, pg_execute, postgres_or_skip
from tests.partner import Partner, configured_tokens, send
from tests.read_models import caught_up
from tests.store import Store
from tests.upgrade import (
    BACKENDS,
    FIXTURES,
    SECTIONS,
    StoreFixture,
    differences,
    load_postgres,
    load_sqlite,
    observe,
    rebuild_differences,
    store_fixtures,
)
from web.app import create_app

CASES = [
    pytest.param(
        fixture,
        backend,
        id=f"{fixture.name}-{backend}",
        marks=[pytest.mark.postgres] if backend == "postgres" else [],
    )
    for fixture in store_fixtures()
    for backend in BACKENDS
]
KEEP = 100_000
"""Retention days in the test's settings: the fixtures' records are old, and
the server prunes at start."""


@contextmanager
def loaded(fixture: StoreFixture, backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database holding ``fixture``'s dump of ``backend``; its URL."""
    if backend == "sqlite":
        yield load_sqlite(fixture.dump("sqlite"), tmp_path / "store.db")
        return
    postgres_or_skip()
    name = f"idemsync_up_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    pg_execute(f"CREATE DATABASE {name}")
    try:
        url = f"{PG_SERVER}/{name}"
        load_postgres(fixture.dump("postgres"), url)
        yield url
    finally:
        pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_every_store_fixture_is_complete() -> None:
    fixtures = store_fixtures()
    assert fixtures, f"no store fixture in {FIXTURES}"
    for fixture in fixtures:
        for name in ("README.md", "expected.json", *(f"{b}.sql" for b in BACKENDS)):
            assert (fixture.path / name).is_file(), f"{fixture.name} has no {name}"
        missing = set(SECTIONS) - set(fixture.expected)
        assert not missing, f"{fixture.name}/expected.json lacks {sorted(missing)}"


@pytest.mark.parametrize(("fixture", "backend"), CASES)
def test_a_store_written_by_an_earlier_release_is_upgraded_unchanged(
    fixture: StoreFixture, backend: str, tmp_path: Path
) -> None:
    expected = fixture.expected
    with loaded(fixture, backend, tmp_path) as url:
        database = Database(url)
        database.upgrade()
        assert database.current_revision() == database.head_revision()
        database.close()

        found = observe(url)
        problems = differences(expected, found)
        assert not problems, (
            f"{fixture.name} on {backend} after the upgrade:\n" + "\n".join(problems)
        )
        assert not found["audit"]["failed"], found["audit"]["findings"]
        problems = rebuild_differences(url)
        assert not problems, (
            f"{fixture.name} on {backend}: rebuilt read models differ:\n"
            + "\n".join(problems)
        )
        keeps_working(url, expected)


def keeps_working(url: str, expected: dict[str, Any]) -> None:
    """Retries answered as first answered, a new delivery applied, chained on
    and projected, ``audit verify`` passing with the old head as anchor."""
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    source = standard_source(expected)
    records = {
        name: record
        for name, record in expected["deliveries"].items()
        if name.startswith(f"{source}/")
    }
    retried = next(name for name, r in records.items() if r["outcome"] == "applied")
    pruned = [
        name
        for name in expected["receipts"]
        if name.startswith(f"{source}/") and name not in expected["deliveries"]
    ]
    target = longest_paid_order(expected)
    before = expected["objects"][target]
    amount = before["values"]["paid_cents"] + 100
    partner = Partner(secret)

    with TestClient(create_app(settings(url, expected, secret))) as client:
        key = retried.partition("/")[2]
        store = Store(url)
        payload = store.delivery(source, key)["payload"]  # type: ignore[index]
        store.close()
        answer = send(client, partner.sign(payload, key), source).json()
        assert answer["outcome"] == "duplicate", answer
        assert answer["first"] == records[retried]["answer"], answer

        re_sent = re_send_under_fresh_keys(client, partner, url, source, records)
        found = observe(url)
        objects = {"objects": expected["objects"]}
        problems = differences(objects, {"objects": found["objects"]})
        assert not problems, (
            f"{re_sent} recorded events re-sent under fresh keys changed objects:\n"
            + "\n".join(problems)
        )

        for name in pruned:
            probe = envelope("upgrade.probe")  # any body: the key decides
            key = name.partition("/")[2]
            answer = send(client, partner.sign(probe, key), source).json()
            assert answer["outcome"] == "duplicate", (name, answer)
            assert answer["first"] == expected["receipts"][name]["answer"], answer

        order_id = target.partition("/")[2]
        paid = partner.sign(
            envelope("order.paid", order_id=order_id, amount_cents=amount)
        )
        answer = send(client, paid, source).json()
        assert answer["outcome"] == "applied", answer
        assert answer["aggregate"]["version"] == before["version"] + 1, answer
        assert answer["aggregate"]["namespace"] == DEFAULT_NAMESPACE, answer
        caught_up(client)

    database = Database(url)
    assert database.pinned_namespaces() == dict.fromkeys(
        expected["sources"], DEFAULT_NAMESPACE
    ), "every source that wrote before namespaces keeps writing where it wrote"
    Checkpointer(database.engine()).catch_up()
    head = expected["audit"]["head"]
    report = verify(database.engine(), anchor=(head["seq"], head["hash"]))
    database.close()
    assert not report.failed and not report.findings, report.findings
    # The new payment and its receipt, and each re-send's receipt.
    assert report.events == expected["audit"]["counts"]["events"] + 2 + re_sent
    assert report.head is not None and report.head.seq == head["seq"] + 1
    assert report.head.first_notification_id > head["last_notification_id"]

    after = observe(url)
    assert after["deliveries"][retried]["attempts"] == records[retried]["attempts"] + 1
    assert after["deliveries"][f"{source}/{paid.key}"]["outcome"] == "applied"
    assert after["receipts"][f"{source}/{paid.key}"]["outcome"] == "applied"
    obj = after["objects"][target]
    assert (obj["status"], obj["version"]) == ("paid", before["version"] + 1), obj
    assert obj["values"] == {**before["values"], "paid_cents": amount}, obj
    row = next(r for r in after["read_models"]["orders"] if r["order_id"] == order_id)
    assert (row["status"], row["paid_cents"], row["version"]) == (
        "paid",
        amount,
        before["version"] + 1,
    ), row
    stats = {
        (r["source"], r["outcome"]): r["count"]
        for r in after["read_models"]["source_stats"]
    }
    old_stats = {
        (r["source"], r["outcome"]): r["count"]
        for r in expected["read_models"]["source_stats"]
    }
    assert stats[(source, "applied")] == old_stats[(source, "applied")] + 1


def re_send_under_fresh_keys(
    client: TestClient,
    partner: Partner,
    url: str,
    source: str,
    records: dict[str, dict[str, Any]],
) -> int:
    """Every recorded event of ``source`` whose object exists now, re-sent as
    a partner could, under a fresh key (its position was recorded with the
    key as tie-breaker before the upgrade): each is ``stale``, ``rejected``
    or ``ignored`` as before, never ``applied``. Returns how many."""
    store = Store(url)
    try:
        payloads = {
            name: store.delivery(source, name.partition("/")[2])["payload"]  # type: ignore[index]
            for name, record in records.items()
            if record["outcome"] != "parked" or record["resolution"] is not None
        }
    finally:
        store.close()
    for name, payload in payloads.items():
        answer = send(client, partner.sign(payload), source).json()
        assert answer["outcome"] in ("stale", "rejected", "ignored"), (name, answer)
    return len(payloads)


def standard_source(expected: dict[str, Any]) -> str:
    """The first source of the fixture that takes Standard Webhooks
    envelopes (the test's probes are such envelopes)."""
    for name, source in sorted(expected["sources"].items()):
        if (source["scheme"], source["mapping"]) == ("standard-webhooks", "standard"):
            return str(name)
    raise AssertionError("the fixture has no standard-webhooks source")


def longest_paid_order(expected: dict[str, Any]) -> str:
    """The paid order with the most events (a snapshot's, if any): the new
    delivery pays it again."""
    paid = [
        (obj["version"], name)
        for name, obj in expected["objects"].items()
        if name.startswith("order/") and obj["status"] == "paid"
    ]
    assert paid, "the fixture has no paid order"
    return max(paid)[1]


def settings(url: str, expected: dict[str, Any], secret: str) -> Settings:
    """The fixture's sources with this test's secret, records kept."""
    sources = {
        name: SourceSettings(
            name=name,
            scheme=source["scheme"],
            secrets=(secret,),
            mapping=source["mapping"],
            retention_days=KEEP,
        )
        for name, source in expected["sources"].items()
    }
    return Settings(
        database_url=url,
        sources=MappingProxyType(sources),
        config_path=Path("tests"),
        tokens=configured_tokens(),
        projections=ProjectionsTable(poll_seconds=0.05),
    )


def envelope(type_: str, **data: Any) -> bytes:
    """A ``standard`` envelope that happened now (after anything in a
    fixture, whether its objects are ordered by sequence or by time)."""
    moment = datetime.now(UTC).isoformat()
    return json.dumps({"type": type_, "timestamp": moment, "data": data}).encode()
