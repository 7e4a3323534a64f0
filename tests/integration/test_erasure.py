"""Erasure of a customer's personal data (docs/privacy.md) on both backends,
through the real ASGI app with Shopify's own example objects: the mandatory
``customers/redact`` topic, the admin endpoint and ``idemsync erase``.

After an erasure a dump of the whole database (``pg_dump``, SQLite's
``.dump``) holds none of the customer's values in any encoding we can think
of, while ``audit verify`` passes, a rebuild of every projection finds no
difference, and another customer reads as before."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from domain.personal import ERASED
from idemsync.cli import main
from infrastructure.audit.verify import verify
from infrastructure.bootstrap import sync_service
from infrastructure.persistence.database import Database
from infrastructure.privacy.keys import MasterKey
from infrastructure.settings import Settings
from tests.partner import auth, make_settings
from tests.read_models import caught_up
from tests.shopify_examples import body_of, example, shop_source, shopify_headers
from tests.upgrade import rebuild_differences
from web.app import create_app
from web.state import app_state

SHOP_SECRET = "shpss_" + "7" * 32
BOB = "207119551"
ANN = "300000001"
BOB_VALUES = (
    "bob.norman@hostmail.com",
    "Bob Norman",
    "Chestnut Street 92",
    "555-625-1199",
    "+15556251199",
)
ANN_VALUES = ("ann.lee@example.org", "Ann Lee", "Elm Street 1")
SHOP_CONFIG = (
    '[sources.shop]\nscheme = "shopify"\nmapping = "shopify"\n'
    'secrets = ["env:SHOP_SECRET"]\n'
)


@pytest.fixture
def master_key() -> MasterKey:
    return MasterKey(os.urandom(32))


@pytest.fixture
def settings(database_url: str, secret: str, master_key: MasterKey) -> Settings:
    shop = shop_source(SHOP_SECRET)
    base = make_settings(database_url, secret)
    return dataclasses.replace(
        base, sources=MappingProxyType({"shop": shop}), master_key=master_key
    )


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Cli:
    """Runs ``idemsync ARGS`` on the test's store, configured with the
    ``shop`` source and, given ``master``, ``[privacy] master_key``; each
    other keyword names a variable holding that key (``OLD=key``). The
    exit code, stdout and stderr."""
    config = tmp_path / "idemsync.toml"
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(config))
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", database_url)
    monkeypatch.setenv("SHOP_SECRET", SHOP_SECRET)

    def run(
        *args: str, master: MasterKey | None = None, **keys: MasterKey
    ) -> tuple[int, str, str]:
        text = SHOP_CONFIG
        if master is not None:
            text += '[privacy]\nmaster_key = "env:IDEMSYNC_MASTER_KEY"\n'
            keys["IDEMSYNC_MASTER_KEY"] = master
        for name, key in keys.items():
            monkeypatch.setenv(name, base64.b64encode(key.key).decode())
        config.write_text(text)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


class Shop:
    """Sends Shopify deliveries and remembers Bob's bodies (to look for
    them, base64-encoded, in the dump)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.bob_bodies: list[bytes] = []

    def send(
        self, topic: str, payload: dict[str, Any], webhook_id: str | None = None
    ) -> dict[str, Any]:
        body = body_of(payload)
        if BOB in body.decode():
            self.bob_bodies.append(body)
        headers = shopify_headers(SHOP_SECRET, topic, body, webhook_id)
        response = self.client.post("/webhooks/shop", content=body, headers=headers)
        assert response.status_code in (200, 202), response.text
        answer: dict[str, Any] = response.json()
        return answer


def ann() -> dict[str, Any]:
    customer = example("customer")
    address = {**customer["default_address"], "address1": "Elm Street 1"}
    address |= {"id": int(ANN), "phone": "+15550001111"}
    return {
        **customer,
        "id": int(ANN),
        "email": ANN_VALUES[0],
        "first_name": "Ann",
        "last_name": "Lee",
        "default_address": address,
        "addresses": [address],
    }


def bob_updated() -> dict[str, Any]:
    return {
        **example("customer"),
        "phone": BOB_VALUES[4],
        "updated_at": "2015-06-01T10:00:00-04:00",
    }


def redact_request() -> dict[str, Any]:
    return {
        "shop_id": 954889,
        "shop_domain": "example.myshopify.com",
        "customer": {"id": int(BOB), "email": BOB_VALUES[0], "phone": BOB_VALUES[4]},
        "orders_to_redact": [450789469],
    }


@pytest.fixture
def shop(client: TestClient) -> Shop:
    """Bob (with an order and an update) and Ann, in the read models."""
    shop = Shop(client)
    assert shop.send("customers/create", example("customer"), "wh-bob")["outcome"] == (
        "applied"
    )
    assert shop.send("orders/create", example("order"), "wh-order")["outcome"] == (
        "applied"
    )
    assert shop.send("customers/update", bob_updated(), "wh-bob-2")["outcome"] == (
        "applied"
    )
    assert shop.send("customers/create", ann(), "wh-ann")["outcome"] == "applied"
    caught_up(client)
    return shop


def dump(url: str) -> bytes:
    """The whole database as text: ``pg_dump`` or SQLite's ``.dump``."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        connection = sqlite3.connect(path)
        try:
            return "\n".join(connection.iterdump()).encode()
        finally:
            connection.close()
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    done = subprocess.run(
        ["pg_dump", "--dbname", plain], capture_output=True, check=True
    )
    return done.stdout


def encodings(value: str) -> list[bytes]:
    """``value`` plain, JSON-escaped, and as hex (the dumps show binary
    columns in hex: PostgreSQL ``\\x..``, SQLite ``X'..'``)."""
    raw = value.encode()
    return [raw, json.dumps(value)[1:-1].encode(), raw.hex().encode()]


def found_in(
    database: bytes, values: tuple[str, ...], bodies: list[bytes]
) -> list[str]:
    lowered = database.lower()
    found = [
        f"{value!r} as {encoded[:40]!r}"
        for value in values
        for encoded in encodings(value)
        if encoded.lower() in lowered
    ]
    found += [
        f"a body in base64 ({body[:30]!r})"
        for body in bodies
        if base64.b64encode(body) in database
    ]
    return found


def view(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path, headers=auth("reader"))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_personal_fields_are_stored_sealed_and_read_back_in_clear(
    client: TestClient, shop: Shop, database_url: str
) -> None:
    with Database(database_url).engine().connect() as conn:
        states = conn.execute(text("SELECT state FROM idemsync_events")).scalars()
        stored = b"\n".join(bytes(state) for state in states)
    assert b"enc:v1:" in stored
    assert not [v for v in BOB_VALUES if v.encode() in stored]
    seen = view(client, f"/views/customers/{BOB}")
    assert (seen["email"], seen["name"], seen["phone"]) == (
        "bob.norman@hostmail.com",
        "Bob Norman",
        "+15556251199",
    )


def test_after_customers_redact_no_dump_holds_the_customer_yet_audit_and_rebuilds_agree(
    client: TestClient, shop: Shop, database_url: str, master_key: MasterKey
) -> None:
    before = dump(database_url)
    assert found_in(before, BOB_VALUES, shop.bob_bodies)  # the test can find them

    answer = shop.send("customers/redact", redact_request(), "wh-redact")
    assert answer["outcome"] == "applied"
    caught_up(client)

    assert found_in(dump(database_url), BOB_VALUES, shop.bob_bodies) == []
    report = verify(Database(database_url).engine())
    assert not report.failed and report.findings == [], report.findings
    assert rebuild_differences(database_url, master_key) == []
    gone = view(client, f"/views/customers/{BOB}")
    assert (gone["deleted"], gone["email"], gone["name"], gone["address"]) == (
        True,
        None,
        None,
        None,
    )
    kept = view(client, f"/views/customers/{ANN}")
    assert (kept["email"], kept["name"]) == ANN_VALUES[:2]
    assert kept["address"]["address1"] == ANN_VALUES[2]
    assert found_in(dump(database_url), ANN_VALUES, [])  # her read-model row


def test_resent_deliveries_of_an_erased_customer_are_duplicate_or_stale_storing_nothing(
    client: TestClient, shop: Shop, database_url: str
) -> None:
    shop.send("customers/redact", redact_request(), "wh-redact")
    assert shop.send("customers/create", example("customer"), "wh-bob")["outcome"] == (
        "duplicate"
    )
    again = shop.send("customers/update", bob_updated(), "wh-bob-new-key")
    assert again["outcome"] in ("duplicate", "stale")
    assert shop.send("customers/redact", redact_request(), "wh-redact")["outcome"] == (
        "duplicate"
    )
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    newer = {**bob_updated(), "updated_at": an_hour_ago.isoformat()}
    assert shop.send("customers/update", newer, "wh-bob-later")["outcome"] == (
        "rejected"
    )
    replay = client.post("/admin/replay?source=shop", headers=auth("admin"))
    assert replay.status_code == 200, replay.text
    replayed = {d["key"]: d for d in replay.json()["deliveries"]}
    assert not any(d["changed"] for d in replayed.values())
    assert replayed["wh-bob"]["redacted"] and replayed["wh-bob-later"]["redacted"]
    caught_up(client)
    assert view(client, f"/views/customers/{BOB}")["email"] is None
    assert found_in(dump(database_url), BOB_VALUES, shop.bob_bodies) == []


def test_history_and_past_states_show_erased_fields_as_erased_and_name_who_erased(
    client: TestClient, shop: Shop
) -> None:
    shop.send("customers/redact", redact_request(), "wh-redact")
    events = client.get(
        f"/audit/aggregates/customer/{BOB}/events", headers=auth("auditor")
    ).json()["events"]
    upserted = [e for e in events if e["type"] == "Upserted"]
    assert upserted and all(
        value in (None, ERASED)
        for e in upserted
        for name, value in e["data"]["changes"].items()
        if name != "status"
    )
    (erased,) = [e for e in events if e["type"] == "Erased"]
    assert erased["data"]["by"] == "source:shop"
    assert "wh-redact" in erased["data"]["reason"]
    first = client.get(
        f"/audit/aggregates/customer/{BOB}?version=2", headers=auth("auditor")
    ).json()
    assert first["fields"]["email"] == ERASED
    export = client.get(
        "/audit/events?after=0&limit=1000",
        headers={**auth("auditor"), "accept": "application/x-ndjson"},
    )
    assert export.status_code == 200 and b"Erased" in export.content
    assert found_in(export.content, BOB_VALUES, shop.bob_bodies) == []
    assert found_in(export.content, ANN_VALUES, []), "the others are exported"


def test_the_admin_endpoint_and_the_cli_erase_and_finish_an_erasure_asked_again(
    client: TestClient, shop: Shop, database_url: str, settings: Settings, cli: Cli
) -> None:
    path = f"/admin/customers/{BOB}/erase?reason=ticket-7"
    assert client.post(path, headers=auth("reader")).status_code == 403
    first = client.post(path, headers=auth("admin")).json()
    assert (first["recorded"], first["key_destroyed"], first["by"]) == (
        True,
        True,
        "token:test-admin",
    )
    assert first["deliveries_redacted"] >= 3
    again = client.post(path, headers=auth("admin")).json()
    assert (again["recorded"], again["key_destroyed"]) == (False, False)

    code, out, _ = cli(
        "erase", "customer", ANN, "--reason", "ticket-8", master=settings.master_key
    )
    assert code == 0, out
    assert f"customer {ANN} in shop: erased" in out
    assert "data key destroyed" in out
    caught_up(client)
    assert found_in(dump(database_url), ANN_VALUES, []) == []


def test_a_redact_request_for_a_customer_never_seen_leaves_nothing_parked(
    client: TestClient, database_url: str
) -> None:
    shop = Shop(client)
    answer = shop.send("customers/redact", redact_request(), "wh-redact-first")
    assert answer["outcome"] == "parked", "the deletion waits for a customer..."
    queue = client.get(
        "/audit/deliveries?outcome=parked&unresolved=1", headers=auth("auditor")
    ).json()["items"]
    assert queue == [], "...but an erased customer is never created"
    record = client.get(
        "/audit/deliveries/shop/wh-redact-first", headers=auth("auditor")
    ).json()
    assert record["resolution"] == "ignored"
    assert record["redacted_at"] is not None and record["payload"] is None
    later = shop.send("customers/create", example("customer"), "wh-bob-after")
    assert later["outcome"] == "rejected"
    caught_up(client)
    assert found_in(dump(database_url), BOB_VALUES, shop.bob_bodies) == []


def test_without_a_master_key_an_erasure_says_which_events_keep_the_fields_in_clear(
    settings: Settings, database_url: str, cli: Cli
) -> None:
    clear = dataclasses.replace(settings, master_key=None)
    with TestClient(create_app(clear), raise_server_exceptions=False) as client:
        shop = Shop(client)
        shop.send("customers/create", example("customer"), "wh-bob")
        shop.send("customers/update", bob_updated(), "wh-bob-2")
    code, out, _ = cli("erase", "customer", BOB, "--reason", "ticket-9")
    assert code == 1, out
    assert "personal fields are stored in clear" in out
    assert "warning: 2 event(s) hold its fields in clear" in out
    code, _, err = cli(
        "erase", "customer", BOB, "--namespace", "nowhere", "--reason", "x"
    )
    assert code == 2
    assert "no source writes into namespace 'nowhere' (shop)" in err


def test_a_master_key_rotation_rewraps_every_key_and_the_fields_read_as_before(
    client: TestClient,
    shop: Shop,
    settings: Settings,
    cli: Cli,
) -> None:
    assert settings.master_key is not None
    new = MasterKey(os.urandom(32))
    rotated = dataclasses.replace(settings, master_key=new)
    database = Database.of(rotated)
    service = sync_service(rotated, database)
    try:
        with pytest.raises(ValueError, match="finish the rotation"):
            service.find("customer", BOB, "shop")
        old = settings.master_key
        code, out, _ = cli("keys", "rotate", "--old", "env:OLD", master=new, OLD=old)
        assert (code, out.strip()) == (
            0,
            f"rewrapped 2 data key(s) with master key {new.key_id}",
        )
        code, out, _ = cli("keys", "rotate", "--old", "env:OLD", master=new, OLD=old)
        assert out.startswith("rewrapped 0 data key(s)")
        bob = service.find("customer", BOB, "shop")
        assert bob is not None and bob.values["email"] == BOB_VALUES[0]
    finally:
        service.close()
        database.close()


def test_config_check_says_whether_personal_fields_are_sealed(cli: Cli) -> None:
    key = MasterKey(os.urandom(32))
    code, out, _ = cli("config", "check", master=key)
    assert code == 0
    assert f"privacy: personal fields sealed, master key {key.key_id}" in out
    assert base64.b64encode(key.key).decode() not in out
    code, out, _ = cli("config", "check")
    assert "privacy: no master key: personal fields are stored in clear" in out


def test_an_erasure_interrupted_after_its_event_is_finished_by_asking_again(
    client: TestClient, shop: Shop, database_url: str
) -> None:
    """As after a crash between the ``Erased`` event and the rest: the
    event is there, the key and the raw deliveries are not yet touched."""
    services = app_state(client.app).services
    services.service.erase_customer(BOB, "shop", "cli:dpo", "ticket 10")
    assert found_in(dump(database_url), BOB_VALUES, shop.bob_bodies)
    path = f"/admin/customers/{BOB}/erase?reason=ticket-10"
    finished = client.post(path, headers=auth("admin")).json()
    assert (finished["recorded"], finished["key_destroyed"]) == (False, True)
    assert finished["deliveries_redacted"] >= 3
    caught_up(client)
    assert found_in(dump(database_url), BOB_VALUES, shop.bob_bodies) == []
