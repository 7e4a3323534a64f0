"""Redacting a data subject's delivery records (issue 18), on both backends,
through the real app: the payload and headers go, their digests stay; a
retry is still a duplicate (by key, by fingerprint); a replay never decodes
a redacted record; the audit record shows the digests; and
``subject_deliveries`` finds a customer's records and no one else's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from sqlalchemy import Engine, text
from starlette.testclient import TestClient

from infrastructure.audit.verify import verify
from infrastructure.persistence.ledger import iso, parse_time
from infrastructure.privacy.redaction import redact_deliveries, subject_deliveries
from infrastructure.retention import prune
from infrastructure.settings import Settings, SourceSettings
from infrastructure.sources import Source
from tests.integration.test_captured_deliveries import SHOP_SECRET, envelope, shopify
from tests.integration.test_delivery_replay import send_history
from tests.partner import Partner, auth, make_settings, post
from tests.read_models import caught_up
from tests.store import Store
from tests.stripe_examples import envelope as stripe_envelope
from tests.stripe_examples import example, stripe_headers
from web.app import create_app
from web.bodies.audit import AuditDeliveryDetail

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
ADA = "ada@example.com"


@pytest.fixture
def settings(database_url: str, secret: str) -> Settings:
    """``acme`` (Standard Webhooks, signed keys) and ``shop`` (Shopify's
    scheme: the key is outside the signature, so copies are found by
    fingerprint), both with the ``standard`` mapping."""
    base = make_settings(database_url, secret)
    shop = SourceSettings(name="shop", scheme="shopify", secrets=(SHOP_SECRET,))
    return dataclasses.replace(base, sources={**base.sources, "shop": shop})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upsert(partner: Partner, customer_id: str, **fields: Any) -> Any:
    return partner.event("customer.upserted", customer_id=customer_id, **fields)


def deliver_shop(client: TestClient, body: bytes, key: str) -> dict[str, Any]:
    response = client.post("/webhooks/shop", content=body, headers=shopify(body, key))
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_redaction_empties_payload_and_headers_and_keeps_digests_of_the_originals(
    client: TestClient, partner: Partner, store: Store, engine: Engine
) -> None:
    request = upsert(partner, "cus_1", email=ADA, name="Ada Lovelace")
    assert post(client, request)[1]["outcome"] == "applied"
    before = store.delivery("acme", request.key)
    assert before is not None and ADA.encode() in before["payload"]
    assert before["redacted_at"] is None and before["payload_sha256"] is None

    pairs = [("acme", request.key), ("acme", request.key), ("acme", "msg_gone")]
    assert redact_deliveries(engine, pairs, AT) == 1

    after = store.delivery("acme", request.key)
    assert after is not None
    assert after["payload_sha256"] == sha256(before["payload"])
    assert after["headers_sha256"] == sha256(before["headers"].encode())
    assert (after["payload"], after["headers"]) == (b"", "{}")
    assert parse_time(after["redacted_at"]) == AT
    kept = ("answer", "outcome", "received_at", "aggregate_id", "attempts")
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    assert not any(ADA in str(value) for value in after.values())

    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert redact_deliveries(engine, pairs, later) == 0, "already redacted"
    again = store.delivery("acme", request.key)
    assert again is not None and parse_time(again["redacted_at"]) == AT


def test_a_redacted_deliverys_retry_is_still_a_duplicate_by_key_and_by_fingerprint(
    settings: Settings, partner: Partner, store: Store, engine: Engine
) -> None:
    request = upsert(partner, "cus_1", email=ADA)
    body = envelope("customer.upserted", customer_id="cus_2", email="bob@example.com")
    with TestClient(create_app(settings)) as client:
        _, first, _ = post(client, request)
        shop_first = deliver_shop(client, body, "shop-k1")
    assert redact_deliveries(engine, [("acme", request.key), ("shop", "shop-k1")], AT)
    events = store.count("idemsync_events")

    with TestClient(create_app(settings)) as client:  # no answer in memory
        status, answer, headers = post(client, request)
        assert (status, answer["outcome"], answer["first"]) == (200, "duplicate", first)
        assert headers["idempotent-replayed"] == "true"
        for key in ("shop-k1", "shop-k2"):  # by key, then by fingerprint
            copy = deliver_shop(client, body, key)
            assert (copy["outcome"], copy["first"]) == ("duplicate", shop_first), key
    assert store.count("idemsync_events") == events


def test_a_replay_after_redaction_never_decodes_the_redacted_deliveries(
    settings: Settings,
    partner: Partner,
    store: Store,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = send_history(settings, partner)  # refunds ignored by the old mapping
    refunds = {keys[name] for name in ("refund_1", "partial_2", "full_2")}
    assert redact_deliveries(engine, [("acme", k) for k in refunds], AT) == 3
    decoded: list[bytes] = []
    decode = Source.decode

    def spy(self: Source, body: bytes, *args: Any) -> Any:
        decoded.append(body)
        return decode(self, body, *args)

    monkeypatch.setattr(Source, "decode", spy)
    events = store.topics()

    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/admin/replay",
            params={"source": "acme", "outcome": "ignored"},
            headers=auth("admin"),
        )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["counts"] == {
        "replayed": 4,
        "changed": 0,
        "unchanged": 4,
        "failed": 0,
    }
    redacted = {d["key"]: d for d in report["deliveries"] if d["redacted"]}
    assert set(redacted) == refunds
    for found in redacted.values():
        assert (found["before"], found["now"], found["changed"]) == (
            "ignored",
            "ignored",
            False,
        )
        assert found["reason"].startswith(f"redacted at {iso(AT)}")
    assert len(decoded) == 1 and b"invoice.paid" in decoded[0], "only the invoice"
    assert store.topics() == events, "the fixed mapping applied no redacted refund"


def test_the_audit_record_of_a_redacted_delivery_shows_its_digests_and_no_payload(
    client: TestClient, partner: Partner, store: Store, engine: Engine
) -> None:
    request = upsert(partner, "cus_1", email=ADA)
    post(client, request)
    original = store.delivery("acme", request.key)
    assert original is not None

    def search() -> list[Any]:
        response = client.get(
            "/audit/deliveries", params={"contains": ADA}, headers=auth("auditor")
        )
        assert response.status_code == 200, response.text
        items: list[Any] = response.json()["items"]
        return items

    assert [item["key"] for item in search()] == [request.key]
    plain = client.get(f"/audit/deliveries/acme/{request.key}", headers=auth("auditor"))
    shown = msgspec.json.decode(plain.content, type=AuditDeliveryDetail)
    assert (shown.redacted_at, shown.payload_sha256, shown.headers_sha256) == (
        None,
        None,
        None,
    )
    redact_deliveries(engine, [("acme", request.key)], AT)

    response = client.get(
        f"/audit/deliveries/acme/{request.key}", headers=auth("auditor")
    )
    assert response.status_code == 200, response.text
    record = msgspec.json.decode(response.content, type=AuditDeliveryDetail)
    assert (record.payload, record.payload_encoding, record.headers) == (
        None,
        None,
        None,
    )
    assert record.redacted_at == AT
    assert record.payload_sha256 == sha256(original["payload"])
    assert record.headers_sha256 == sha256(original["headers"].encode())
    assert (record.outcome, record.pruned, record.events) == (
        "applied",
        False,
        shown.events,
    )
    assert search() == [], "a redacted payload contains nothing"
    report = verify(engine)
    assert report.findings == [] and not report.failed, "the hash chain holds"


def test_subject_deliveries_finds_the_customers_and_its_orders_records_only(
    client: TestClient, partner: Partner, engine: Engine
) -> None:
    sent = {
        "ada": upsert(partner, "cus_1", email=ADA, name="Zoë Lovelace"),
        "bob": upsert(partner, "cus_2", email="bob@example.com"),
        "ada_order": partner.order_created("ord_1", customer_id="cus_1"),
        "ada_paid": partner.event("order.paid", order_id="ord_1", amount_cents=5000),
        "bob_order": partner.order_created("ord_2", customer_id="cus_2"),
        "note": partner.event("note.added", text=f"call {ADA} back"),
        "accent": partner.event("note.added", text="Zoë called"),
    }
    outcomes = {name: post(client, r)[1]["outcome"] for name, r in sent.items()}
    assert outcomes["note"] == outcomes["accent"] == "ignored"
    rejected = partner.order_created("ord_1", customer_id="cus_1")  # paid already
    assert post(client, rejected)[1]["outcome"] == "rejected"
    caught_up(client)
    with engine.connect() as conn:
        objects = conn.execute(
            text(
                "SELECT count(*) FROM event_audit WHERE idempotency_key = :key "
                "AND aggregate_type <> 'delivery'"
            ),
            {"key": rejected.key},
        ).scalar_one()
    assert objects == 0, "the rejected delivery is found by its record alone"
    keys = {name: ("acme", r.key) for name, r in sent.items()}
    keys["rejected"] = ("acme", rejected.key)

    def found(*needles: str) -> set[tuple[str, str]]:
        return subject_deliveries(engine, "acme", "cus_1", {"acme"}, needles)

    ada = {keys[n] for n in ("ada", "ada_order", "ada_paid", "rejected")}
    assert found() == ada
    assert found(ADA) == ada | {keys["note"]}
    assert found("Zoë") == ada | {keys["accent"]}, "as JSON escapes it, too"
    assert found("") == ada, "an empty needle finds nothing"
    assert subject_deliveries(engine, "shop", "cus_1", {"shop"}, [ADA]) == set()
    assert subject_deliveries(engine, "acme", "cus_2", {"acme"}) == {
        keys["bob"],
        keys["bob_order"],
    }
    redact_deliveries(engine, found(ADA), AT)
    assert found(ADA) == ada, "a redacted payload contains nothing"


def test_redacted_records_are_pruned_by_retention_like_any_other(
    client: TestClient, partner: Partner, engine: Engine, settings: Settings
) -> None:
    request = upsert(partner, "cus_1", email=ADA)
    post(client, request)
    redact_deliveries(engine, [("acme", request.key)], AT)
    later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    pruned = {p.source: p.count for p in prune(engine, settings.sources, now=later)}
    assert pruned["acme"] == 1
    with engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM deliveries")).scalar_one()
    assert left == 0


def test_subject_deliveries_finds_a_delivery_left_only_on_a_payment_of_its_order(
    settings: Settings, secret: str, engine: Engine
) -> None:
    """Two copies of one refund wait on a payment that names no order; the
    checkout session links it to the customer's order and releases them: the
    second is stale there, so only the payment's events name it."""
    acme = msgspec.structs.replace(
        settings.sources["acme"], scheme="stripe", mapping="stripe"
    )
    refund = example("refund", id="re_1", amount=1000, payment_intent="pi_X")
    session = example(
        "checkout.session",
        client_reference_id="ord_S",
        customer="cus_9",
        payment_intent="pi_X",
        currency="eur",
        amount_total=5000,
        mode="payment",
        status="complete",
        payment_status="paid",
    )
    sent = [
        ("evt_refund_a", "refund.created", refund, "parked"),
        ("evt_refund_b", "refund.created", refund, "parked"),
        ("evt_session", "checkout.session.completed", session, "applied"),
    ]
    stripe = dataclasses.replace(settings, sources={"acme": acme})
    with TestClient(create_app(stripe)) as client:
        for event_id, type_, obj, expected in sent:
            body = json.dumps(
                stripe_envelope(type_, obj, event_id=event_id, created=1_790_000_000)
            ).encode()
            response = client.post(
                "/webhooks/acme", content=body, headers=stripe_headers(secret, body)
            )
            assert response.json()["outcome"] == expected, response.text
        caught_up(client)
    with engine.connect() as conn:
        kinds = conn.execute(
            text(
                "SELECT DISTINCT aggregate_type FROM event_audit "
                "WHERE idempotency_key = 'evt_refund_b'"
            )
        ).scalars()
        assert set(kinds) == {"payment", "delivery"}, "not on the order"
    assert subject_deliveries(engine, "acme", "cus_9", {"acme"}) == {
        ("acme", event_id) for event_id, *_ in sent
    }
