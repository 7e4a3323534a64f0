"""A captured or repeated event is never applied twice (semantic idempotency).

Where a partner's signature does not cover the idempotency key (GitHub,
Shopify, the generic HMAC scheme with a header key), anyone holding a
captured request (an auditor reading the raw payload and its signature
header, say) can re-send it under a fresh key. Such a delivery is a
``duplicate`` of the first, found by the digest of its signed bytes, and
this holds after the first's record was pruned. Where the key is signed
(Standard Webhooks), only the partner can re-send an event under a new key:
the event's position does not depend on the key, so it is ``stale`` and
appends nothing. Both backends, through the ASGI app.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from infrastructure.settings import Settings, SourceSettings
from tests.partner import Partner, auth, make_settings, post
from tests.read_models import caught_up
from tests.store import Store
from web.state import app_state

HUB_SECRET = "gh-" + "h" * 29
SHOP_SECRET = "shpss_" + "s" * 26
BILLING_SECRET = "billing-" + "b" * 24
T = "2026-11-01T10:00:00Z"


@pytest.fixture
def settings(database_url: str, secret: str) -> Settings:
    """``acme`` (Standard Webhooks) and one source of each scheme whose key
    is a header outside the signature, all with the ``standard`` mapping."""
    base = make_settings(database_url, secret)
    sources = {
        **base.sources,
        "hub": SourceSettings(name="hub", scheme="github", secrets=(HUB_SECRET,)),
        "shop": SourceSettings(name="shop", scheme="shopify", secrets=(SHOP_SECRET,)),
        "billing": SourceSettings(
            name="billing",
            scheme="hmac-sha256",
            secrets=(BILLING_SECRET,),
            signature_header="x-billing-signature",
            signature_prefix="sha256=",
        ),
    }
    return dataclasses.replace(base, sources=sources)


def envelope(type_: str, at: str = T, **data: Any) -> bytes:
    return json.dumps({"type": type_, "timestamp": at, "data": data}).encode()


def mac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def github(body: bytes, key: str) -> dict[str, str]:
    """As GitHub sends: ``X-Hub-Signature-256: sha256=<hex>`` of the body."""
    return {
        "x-hub-signature-256": "sha256=" + mac(HUB_SECRET, body).hex(),
        "x-github-delivery": key,
        "x-github-event": "order",
        "content-type": "application/json",
    }


def shopify(body: bytes, key: str) -> dict[str, str]:
    """As Shopify sends: ``X-Shopify-Hmac-Sha256``, base64 of the body's HMAC."""
    return {
        "x-shopify-hmac-sha256": base64.b64encode(mac(SHOP_SECRET, body)).decode(),
        "x-shopify-webhook-id": key,
        "x-shopify-topic": "orders/updated",
        "content-type": "application/json",
    }


def billing(body: bytes, key: str) -> dict[str, str]:
    """The generic scheme, its key in the ``Idempotency-Key`` header."""
    return {
        "x-billing-signature": "sha256=" + mac(BILLING_SECRET, body).hex(),
        "idempotency-key": key,
        "content-type": "application/json",
    }


def version_of(store: Store, order_id: str) -> int:
    order = store.service.find("order", order_id, store.namespace)
    assert order is not None
    return order.version


Signer = Callable[[bytes, str], dict[str, str]]
UNSIGNED_KEYS = pytest.mark.parametrize(
    ("source", "sign"),
    [("hub", github), ("shop", shopify), ("billing", billing)],
    ids=["github", "shopify", "hmac-sha256"],
)


def deliver(
    client: TestClient, source: str, body: bytes, headers: dict[str, str]
) -> dict[str, Any]:
    response = client.post(f"/webhooks/{source}", content=body, headers=headers)
    assert response.status_code in (200, 202), response.text
    answer: dict[str, Any] = response.json()
    return answer


@UNSIGNED_KEYS
def test_a_captured_older_refund_re_sent_under_a_fresh_key_is_a_duplicate(
    client: TestClient, store: Store, source: str, sign: Signer
) -> None:
    """The finding: an older ``order.refunded`` that had lost to a newer one
    in the same second won again when re-sent under a new key, and the
    revenue went from 2000 to 4000 net."""
    created = envelope(
        "order.created",
        order_id="o1",
        customer_id="c1",
        currency="EUR",
        total_cents=5000,
    )
    paid = envelope("order.paid", order_id="o1", amount_cents=5000)
    older = envelope("order.refunded", order_id="o1", amount_cents=1000)
    newer = envelope("order.refunded", order_id="o1", amount_cents=3000)
    for n, body in enumerate((created, paid, older, newer)):
        first = deliver(client, source, body, sign(body, f"k-{n}"))
        assert first["outcome"] in ("applied", "stale"), first
    events = store.count("idemsync_events")

    replayed = deliver(client, source, older, sign(older, "a-fresh-key"))

    assert replayed["outcome"] == "duplicate"
    assert replayed["key"] == "a-fresh-key"
    assert replayed["first"]["key"] == "k-2"
    assert store.count("idemsync_events") == events
    assert store.delivery(source, "a-fresh-key") is None
    caught_up(client)
    order = client.get("/views/orders/o1", headers=auth("reader")).json()
    assert order["refunded_cents"] == 3000
    revenue = client.get("/views/revenue", headers=auth("reader")).json()
    (eur,) = [row for row in revenue["items"] if row["currency"] == "EUR"]
    assert (eur["paid_cents"], eur["refunded_cents"], eur["net_cents"]) == (
        5000,
        3000,
        2000,
    )


@UNSIGNED_KEYS
def test_a_re_sent_capture_counts_as_an_attempt_of_the_first_delivery(
    client: TestClient, store: Store, settings: Settings, source: str, sign: Signer
) -> None:
    body = envelope(
        "order.created", order_id="o2", customer_id="c1", currency="EUR", total_cents=1
    )
    first = deliver(client, source, body, sign(body, "k-first"))
    for n in range(3):
        again = deliver(client, source, body, sign(body, f"k-again-{n}"))
        assert again["outcome"] == "duplicate"
        assert again["first"] == first
    app_state(client.app).sightings.flush()  # type: ignore[attr-defined]
    record = store.delivery(source, "k-first")
    assert record is not None and record["attempts"] == 4


@UNSIGNED_KEYS
def test_the_fingerprint_outlives_the_record_pruned_by_retention(
    client: TestClient, store: Store, source: str, sign: Signer
) -> None:
    body = envelope(
        "order.created", order_id="o3", customer_id="c1", currency="EUR", total_cents=1
    )
    first = deliver(client, source, body, sign(body, "k-pruned"))
    store.forget(source, "k-pruned")

    again = deliver(client, source, body, sign(body, "k-after-retention"))

    assert again["outcome"] == "duplicate"
    assert again["first"] == first


@UNSIGNED_KEYS
def test_a_different_body_under_the_same_key_source_is_a_new_delivery(
    client: TestClient, source: str, sign: Signer
) -> None:
    """The fingerprint is of the signed bytes: another event is not a copy."""
    one = envelope(
        "order.created", order_id="o4", customer_id="c1", currency="EUR", total_cents=1
    )
    two = envelope(
        "order.created", order_id="o5", customer_id="c1", currency="EUR", total_cents=1
    )
    assert deliver(client, source, one, sign(one, "k-one"))["outcome"] == "applied"
    assert deliver(client, source, two, sign(two, "k-two"))["outcome"] == "applied"


def test_a_standard_webhooks_event_re_sent_under_a_new_id_is_stale_appending_nothing(
    client: TestClient, partner: Partner, store: Store
) -> None:
    """The key is signed: only the partner can re-send under a new id. The
    same event (same ``sequence``, same values) has the same position."""
    created = partner.sign(
        envelope(
            "order.created",
            order_id="o6",
            customer_id="c1",
            currency="EUR",
            total_cents=10,
            sequence=1,
        )
    )
    paid_body = envelope("order.paid", order_id="o6", amount_cents=10, sequence=2)
    assert post(client, created)[1]["outcome"] == "applied"
    assert post(client, partner.sign(paid_body))[1]["outcome"] == "applied"
    events, version = store.count("idemsync_events"), version_of(store, "o6")

    for _ in range(3):
        status, answer, _ = post(client, partner.sign(paid_body))
        assert (status, answer["outcome"]) == (200, "stale"), answer
        assert answer["aggregate"]["version"] == version

    assert store.count("idemsync_events") == events + 3  # three receipts only
    assert version_of(store, "o6") == version
