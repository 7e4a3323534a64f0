"""Namespaces (specification §11): a partner's object is (namespace, type,
id). Through the real ASGI app, on both backends: two sources that use the
same order id never touch each other's order; two sources that name one
namespace (a Shopify store and the Stripe account that takes its payments)
work on the same order; the views, the audit trail and the answers say which
namespace."""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import msgspec
import pytest
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from infrastructure.source_settings import SourceSettings
from tests.partner import Partner, auth, make_settings, post
from tests.read_models import caught_up
from tests.shopify_examples import body_of, example, shopify_headers
from tests.stripe_examples import envelope, stripe_headers
from tests.stripe_examples import example as stripe_example
from web.app import create_app

SHOP_SECRET = "shpss_" + "7" * 32
STRIPE_SECRET = "whsec_" + "8" * 32
SHOPIFY_ORDER = "450789469"


def client_for(settings: Settings, *sources: SourceSettings) -> TestClient:
    sources_by_name = MappingProxyType({source.name: source for source in sources})
    app = create_app(dataclasses.replace(settings, sources=sources_by_name))
    return TestClient(app, raise_server_exceptions=False)


def read(client: TestClient, path: str, role: str = "reader") -> Any:
    response = client.get(path, headers=auth(role))
    assert response.status_code == 200, response.text
    return response.json()


def refused(client: TestClient, path: str, role: str = "reader") -> str:
    response = client.get(path, headers=auth(role))
    assert response.status_code == 400, response.text
    return str(response.json()["message"])


@pytest.fixture
def two_shops(settings: Settings) -> Iterator[tuple[TestClient, Partner, Partner]]:
    """``acme`` and ``beta``: Standard Webhooks senders with their own
    secrets and no ``namespace`` line (each its own namespace)."""
    beta_secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    acme = settings.sources["acme"]
    beta = msgspec.structs.replace(acme, name="beta", secrets=(beta_secret,))
    with client_for(settings, acme, beta) as client:
        yield client, Partner(acme.secrets[0]), Partner(beta_secret)


def test_two_sources_that_send_the_same_order_id_never_touch_each_others_order(
    two_shops: tuple[TestClient, Partner, Partner],
) -> None:
    client, acme, beta = two_shops
    created = acme.order_created("1001", customer_id="cus_a", total_cents=5000)
    _, answer, _ = post(client, created, "acme")
    assert answer["outcome"] == "applied", answer
    assert answer["aggregate"]["namespace"] == "acme", answer

    theirs = beta.order_created(
        "1001", customer_id="cus_b", currency="USD", total_cents=900
    )
    _, answer, _ = post(client, theirs, "beta")
    assert answer["outcome"] == "applied", answer
    assert (answer["aggregate"]["namespace"], answer["aggregate"]["version"]) == (
        "beta",
        2,
    ), "beta's order 1001 is a new object, not acme's at version 3"
    _, answer, _ = post(client, beta.event("order.cancelled", order_id="1001"), "beta")
    assert answer["outcome"] == "applied", answer
    # beta paying an order only acme has waits for beta's own order 1002.
    paid = beta.event("order.paid", order_id="1002", amount_cents=1)
    _, answer, _ = post(client, paid, "beta")
    assert answer["outcome"] == "parked", answer
    caught_up(client)

    mine = read(client, "/views/orders/1001?namespace=acme")
    assert (mine["status"], mine["customer_id"], mine["currency"]) == (
        "created",
        "cus_a",
        "EUR",
    ), mine
    assert (mine["total_cents"], mine["namespace"]) == (5000, "acme"), mine
    other = read(client, "/views/orders/1001?namespace=beta")
    assert (other["status"], other["customer_id"], other["total_cents"]) == (
        "cancelled",
        "cus_b",
        900,
    ), other

    message = refused(client, "/views/orders/1001")
    assert "acme" in message and "beta" in message and "namespace" in message
    listed = read(client, "/views/orders?namespace=acme")["items"]
    assert [(row["namespace"], row["order_id"]) for row in listed] == [("acme", "1001")]
    every = read(client, "/views/orders")["items"]
    assert [(row["order_id"], row["namespace"]) for row in every] == [
        ("1001", "acme"),
        ("1001", "beta"),
    ]
    revenue = read(client, "/views/revenue")["items"]
    assert {(row["namespace"], row["currency"]) for row in revenue} <= {
        ("acme", "EUR"),
        ("beta", "USD"),
    }

    state = read(client, "/audit/aggregates/order/1001?namespace=acme", "auditor")
    assert (state["status"], state["aggregate"]["namespace"]) == ("created", "acme")
    assert refused(client, "/audit/aggregates/order/1001", "auditor")
    events = read(
        client, "/audit/aggregates/order/1001/events?namespace=beta", "auditor"
    )
    assert events["aggregate"]["namespace"] == "beta"
    assert {event["delivery"]["source"] for event in events["events"]} == {"beta"}
    assert {event["aggregate"]["namespace"] for event in events["events"]} == {"beta"}
    parked = read(client, "/audit/aggregates/order/1002", "auditor")
    assert (parked["aggregate"]["namespace"], parked["exists"]) == ("beta", False)


def test_a_shared_namespace_lets_shopify_create_and_stripe_pay_the_same_order(
    settings: Settings,
) -> None:
    shop = SourceSettings(
        name="shop",
        scheme="shopify",
        secrets=(SHOP_SECRET,),
        mapping="shopify",
        namespace="store",
    )
    payments = SourceSettings(
        name="payments",
        scheme="stripe",
        secrets=(STRIPE_SECRET,),
        mapping="stripe",
        namespace="store",
    )
    with client_for(settings, shop, payments) as client:
        order = example("order")  # Shopify's example: authorized, not paid
        body = body_of(order)
        response = client.post(
            "/webhooks/shop",
            content=body,
            headers=shopify_headers(SHOP_SECRET, "orders/create", body),
        )
        assert response.json()["outcome"] == "applied", response.text
        assert response.json()["aggregate"]["namespace"] == "store"

        session = stripe_example(
            "checkout.session",
            client_reference_id=SHOPIFY_ORDER,
            currency="usd",
            amount_total=40994,
            mode="payment",
            status="complete",
            payment_status="paid",
        )
        document = envelope(
            "checkout.session.completed",
            session,
            event_id="evt_shared_1",
            created=1_700_000_000,
        )
        body = msgspec.json.encode(document)
        response = client.post(
            "/webhooks/payments",
            content=body,
            headers=stripe_headers(STRIPE_SECRET, body),
        )
        answer = response.json()
        assert answer["outcome"] == "applied", answer
        assert answer["aggregate"] == {
            "type": "order",
            "id": SHOPIFY_ORDER,
            "namespace": "store",
            "version": answer["aggregate"]["version"],
        }
        caught_up(client)

        row = read(client, f"/views/orders/{SHOPIFY_ORDER}")
        assert (row["namespace"], row["status"], row["paid_cents"]) == (
            "store",
            "paid",
            40994,
        ), row
        assert (row["currency"], row["total_cents"]) == ("USD", 40994), row
        events = read(
            client, f"/audit/aggregates/order/{SHOPIFY_ORDER}/events", "auditor"
        )["events"]
        sources = [e["delivery"]["source"] for e in events if e["delivery"]]
        assert "shop" in sources and "payments" in sources, sources


def test_a_source_writes_where_its_namespace_line_says_and_names_it_at_start(
    settings: Settings, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Settings: ``namespace`` names a shared one; without it the source's
    name; a namespace name must be one a source could have."""
    from infrastructure.settings import ConfigError
    from infrastructure.source_settings import read_source

    fields = {"scheme": "standard-webhooks", "secrets": ["env:S"]}
    environ = {"S": secret}
    named = read_source("acme", {**fields, "namespace": "shop-1"}, environ, True)
    assert named.namespace_of({}) == ("shop-1", "named")
    own = read_source("acme", fields, environ, True)
    assert own.namespace_of({}) == ("acme", "its name")
    assert own.namespace_of({"acme": "default"})[0] == "default"
    for bad in ("Shop", "a:b", "a/b", "", "-x"):
        with pytest.raises(ConfigError, match=r"sources\.acme\.namespace"):
            read_source("acme", {**fields, "namespace": bad}, environ, True)


@pytest.fixture
def settings_with_namespace(database_url: str, secret: str) -> Settings:
    return make_settings(database_url, secret, namespace="shared")


def test_a_named_namespace_is_where_the_answer_the_views_and_the_ledger_say(
    settings_with_namespace: Settings, partner: Partner
) -> None:
    with TestClient(create_app(settings_with_namespace)) as client:
        _, answer, _ = post(client, partner.order_created("ord_n1"))
        assert answer["aggregate"]["namespace"] == "shared", answer
        caught_up(client)
        row = read(client, "/views/orders/ord_n1")
        assert row["namespace"] == "shared"
        assert read(client, "/views/orders/ord_n1?namespace=shared") == row
        missing = client.get(
            "/views/orders/ord_n1?namespace=acme", headers=auth("reader")
        )
        assert missing.status_code == 404, missing.text
        delivery = read(client, f"/audit/deliveries/acme/{answer['key']}", "auditor")
        assert delivery["aggregate"]["namespace"] == "shared"
        namespaces = {e["aggregate"]["namespace"] for e in delivery["events"]}
        assert namespaces == {"shared", "default"}, "the order's, and the receipt's"
