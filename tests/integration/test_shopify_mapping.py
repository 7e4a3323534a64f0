"""The built-in ``shopify`` mapping (specification §11) through the real
ASGI app, on both backends: Shopify's own example objects (``tests/fixtures/
shopify``) for every topic, signed as Shopify signs, on first delivery, on
retry (the same ``X-Shopify-Webhook-Id``: ``duplicate``), reordered, and the
read models (orders, customers, revenue) after them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from tests.partner import auth, make_settings
from tests.read_models import caught_up
from tests.shopify_examples import body_of, example, shop_source, shopify_headers
from web.app import create_app

SHOP_SECRET = "shpss_" + "5" * 32
ORDER = "450789469"
CUSTOMER = "207119551"


@pytest.fixture
def settings(database_url: str, secret: str) -> Settings:
    shop = shop_source(SHOP_SECRET)
    base = make_settings(database_url, secret)
    return dataclasses.replace(base, sources=MappingProxyType({"shop": shop}))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def send(
    client: TestClient,
    topic: str,
    payload: dict[str, Any],
    webhook_id: str | None = None,
) -> tuple[int, dict[str, Any]]:
    body = body_of(payload)
    headers = shopify_headers(SHOP_SECRET, topic, body, webhook_id)
    response = client.post("/webhooks/shop", content=body, headers=headers)
    return response.status_code, response.json()


def outcome(client: TestClient, topic: str, payload: dict[str, Any]) -> str:
    status, answer = send(client, topic, payload)
    assert status in (200, 202), answer
    return str(answer["outcome"])


def view(client: TestClient, path: str) -> dict[str, Any]:
    response = client.get(path, headers=auth("reader"))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def paid_order(**changes: Any) -> dict[str, Any]:
    """Shopify's example order, paid (the example is only authorized)."""
    return {**example("order"), "financial_status": "paid", **changes}


def refunded_order(updated_at: str = "2016-06-20T13:35:06-04:00") -> dict[str, Any]:
    """The example order after Shopify's example refund."""
    return paid_order(
        financial_status="partially_refunded",
        updated_at=updated_at,
        refunds=[example("refund")],
    )


def test_a_created_order_is_applied_once_and_its_retry_is_a_duplicate(
    client: TestClient,
) -> None:
    first = send(client, "orders/create", example("order"), webhook_id="wh-1")
    assert (first[0], first[1]["outcome"]) == (200, "applied")
    again = send(client, "orders/create", example("order"), webhook_id="wh-1")
    assert (again[0], again[1]["outcome"]) == (200, "duplicate")
    caught_up(client)
    order = view(client, f"/views/orders/{ORDER}")
    assert (order["status"], order["customer_id"]) == ("created", CUSTOMER)
    assert (order["currency"], order["total_cents"]) == ("USD", 40994)


@pytest.mark.parametrize(
    "topic",
    [
        "orders/updated",
        "orders/paid",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "orders/cancelled",
    ],
)
def test_every_order_topic_carries_the_whole_order_and_creates_it_when_first(
    client: TestClient, topic: str
) -> None:
    assert outcome(client, topic, paid_order()) == "applied"
    assert outcome(client, "orders/create", example("order")) == "stale"
    caught_up(client)
    order = view(client, f"/views/orders/{ORDER}")
    assert (order["status"], order["paid_cents"]) == ("paid", 40994)


def test_a_fulfilled_order_ships_with_its_fulfillments_carrier_and_tracking(
    client: TestClient,
) -> None:
    fulfillment = {**example("fulfillment"), "status": "success"}
    fulfilled = paid_order(
        fulfillment_status="fulfilled",
        updated_at="2013-11-01T16:06:08-04:00",
        fulfillments=[fulfillment],
    )
    assert outcome(client, "orders/fulfilled", fulfilled) == "applied"
    assert outcome(client, "orders/paid", paid_order()) == "stale"  # late
    caught_up(client)
    order = view(client, f"/views/orders/{ORDER}")
    assert (order["status"], order["carrier"]) == ("shipped", "null-company")
    assert order["tracking_number"] == "1Z2345"


def test_fulfillment_topics_ship_then_deliver_and_park_before_their_order(
    client: TestClient,
) -> None:
    fulfillment = example("fulfillment")
    assert outcome(client, "fulfillments/create", fulfillment) == "parked"
    assert outcome(client, "orders/paid", paid_order()) == "applied"
    caught_up(client)
    assert view(client, f"/views/orders/{ORDER}")["status"] == "shipped"
    delivered = {
        **fulfillment,
        "status": "success",
        "shipment_status": "delivered",
        "updated_at": "2013-11-03T09:00:00-05:00",
    }
    status, answer = send(client, "fulfillments/update", delivered, "wh-d")
    assert (status, answer["outcome"]) == (200, "applied")
    assert send(client, "fulfillments/update", delivered, "wh-d")[1]["outcome"] == (
        "duplicate"
    )
    caught_up(client)
    assert view(client, f"/views/orders/{ORDER}")["status"] == "delivered"
    cancelled = {**fulfillment, "status": "cancelled"}
    assert outcome(client, "fulfillments/update", cancelled) == "ignored"


def test_a_cancelled_order_stays_cancelled_when_a_late_create_arrives(
    client: TestClient,
) -> None:
    cancelled = {
        **example("order"),
        "cancelled_at": "2008-01-10T12:00:00-05:00",
        "cancel_reason": "customer",
        "updated_at": "2008-01-10T12:00:00-05:00",
    }
    assert outcome(client, "orders/cancelled", cancelled) == "applied"
    assert outcome(client, "orders/create", example("order")) == "stale"
    caught_up(client)
    order = view(client, f"/views/orders/{ORDER}")
    assert (order["status"], order["total_cents"]) == ("cancelled", 40994)


@pytest.mark.parametrize("refund_first", [True, False])
def test_a_refund_in_refunds_create_and_orders_updated_counts_once_in_either_order(
    client: TestClient, refund_first: bool
) -> None:
    assert outcome(client, "orders/paid", paid_order()) == "applied"
    deliveries = [
        ("refunds/create", example("refund")),
        ("orders/updated", refunded_order()),
    ]
    if not refund_first:
        deliveries.reverse()
    first, second = deliveries
    assert outcome(client, *first) == "applied"
    # orders/updated also restates the order (applied); a refunds/create after
    # it says nothing new (stale). Either way the refund counts once.
    assert outcome(client, *second) == ("applied" if refund_first else "stale")
    retry = send(client, *second, webhook_id="wh-again")
    assert send(client, *second, webhook_id="wh-again") == retry
    caught_up(client)
    order = view(client, f"/views/orders/{ORDER}")
    assert (order["status"], order["paid_cents"]) == ("paid", 40994)
    assert order["refunded_cents"] == 20900
    revenue = view(client, "/views/revenue")["items"]
    assert [
        (r["currency"], r["paid_cents"], r["refunded_cents"], r["net_cents"])
        for r in revenue
    ] == [("USD", 40994, 20900, 20094)]


def test_an_updated_order_before_its_create_is_applied_and_the_create_is_stale(
    client: TestClient,
) -> None:
    edited = paid_order(total_price="399.94", updated_at="2008-01-11T09:00:00-05:00")
    assert outcome(client, "orders/updated", edited) == "applied"
    assert outcome(client, "orders/create", example("order")) == "stale"
    caught_up(client)
    order = view(client, f"/views/orders/{ORDER}")
    assert (order["status"], order["total_cents"]) == ("paid", 39994)


def test_a_guest_order_has_no_customer_and_yen_have_no_minor_unit(
    client: TestClient,
) -> None:
    guest = paid_order(customer=None, currency="JPY", total_price="1500")
    assert outcome(client, "orders/create", guest) == "applied"
    caught_up(client)
    order = view(client, f"/views/orders/{ORDER}")
    assert (order["customer_id"], order["currency"], order["total_cents"]) == (
        None,
        "JPY",
        1500,
    )


def test_an_amount_finer_than_its_currency_is_a_400_naming_the_mapping_and_path(
    client: TestClient,
) -> None:
    status, answer = send(client, "orders/create", paid_order(total_price="409.945"))
    assert status == 400
    assert (answer["mapping"], answer["path"]) == ("shopify", "$.total_price")


def test_customers_are_upserted_then_deleted_and_redacted(client: TestClient) -> None:
    customer = example("customer")
    status, answer = send(client, "customers/create", customer, "wh-c")
    assert (status, answer["outcome"]) == (200, "applied")
    assert send(client, "customers/create", customer, "wh-c")[1]["outcome"] == (
        "duplicate"
    )
    caught_up(client)
    seen = view(client, f"/views/customers/{CUSTOMER}")
    assert (seen["name"], seen["email"]) == ("Bob Norman", "bob.norman@hostmail.com")
    assert seen["address"]["city"] == "Louisville"
    updated = {
        **customer,
        "phone": "+15556251199",
        "updated_at": "2015-06-01T10:00:00-04:00",
    }
    assert outcome(client, "customers/update", updated) == "applied"
    late = {**customer, "note": "re-sent late"}  # another body, the same state
    assert outcome(client, "customers/update", late) == "stale"
    caught_up(client)
    assert view(client, f"/views/customers/{CUSTOMER}")["phone"] == "+15556251199"

    redact = {
        "shop_id": 954889,
        "shop_domain": "example.myshopify.com",
        "customer": {"id": int(CUSTOMER), "email": customer["email"], "phone": None},
        "orders_to_redact": [int(ORDER)],
    }
    assert outcome(client, "customers/redact", redact) == "applied"
    deleted = {"id": int(CUSTOMER), "phone": None, "addresses": []}
    assert outcome(client, "customers/delete", deleted) == "stale"
    caught_up(client)
    gone = view(client, f"/views/customers/{CUSTOMER}")
    assert (gone["deleted"], gone["email"], gone["address"]) == (True, None, None)


def test_a_deleted_customer_before_it_was_created_parks_and_then_deletes(
    client: TestClient,
) -> None:
    assert outcome(client, "customers/delete", {"id": int(CUSTOMER)}) == "parked"
    assert outcome(client, "customers/create", example("customer")) == "applied"
    caught_up(client)
    assert view(client, f"/views/customers/{CUSTOMER}")["deleted"] is True


@pytest.mark.parametrize("topic", ["shop/redact", "customers/data_request"])
def test_compliance_requests_are_acknowledged_and_recorded_for_the_operator(
    client: TestClient, topic: str
) -> None:
    request = {"shop_id": 954889, "shop_domain": "example.myshopify.com"}
    status, answer = send(client, topic, request, "wh-gdpr")
    assert (status, answer["outcome"]) == (200, "ignored")
    assert "recorded with its payload for the operator" in answer["reason"]
    assert send(client, topic, request, "wh-gdpr")[1]["outcome"] == "duplicate"


def test_any_other_topic_is_ignored_naming_it(client: TestClient) -> None:
    status, answer = send(client, "products/update", {"id": 632910392})
    assert (status, answer["outcome"]) == (200, "ignored")
    assert answer["reason"] == "no mapping for Shopify topic 'products/update'"
