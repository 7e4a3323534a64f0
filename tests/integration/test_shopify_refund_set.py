"""Shopify refunds as a set keyed by refund id (specification §11), on both
backends through the ASGI app: any order and repetition of the refund events
(``refunds/create`` and ``orders/updated`` carrying the refunds known so far,
each delivery under its own webhook id) gives the same ``refunded_cents`` and
revenue as in-order delivery."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from infrastructure.source_settings import SourceSettings
from tests.partner import auth, make_settings
from tests.read_models import caught_up
from tests.shopify_examples import body_of, example, shopify_headers
from web.app import create_app

SHOP_SECRET = "shpss_" + "6" * 32
EXAMPLES = 15
REFUNDS = ("12.50", "0.99", "100.00")
"""Three refunds of the order, in EUR; orders/updated number ``i`` carries the
first ``i`` of them."""


@pytest.fixture
def client(database_url: str, secret: str) -> Iterator[TestClient]:
    shop = SourceSettings(
        name="shop", scheme="shopify", secrets=(SHOP_SECRET,), mapping="shopify"
    )
    base: Settings = make_settings(database_url, secret)
    app = create_app(
        dataclasses.replace(base, sources=MappingProxyType({"shop": shop}))
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def refund(order_id: int, index: int) -> dict[str, Any]:
    base = example("refund")
    transaction = {
        **base["transactions"][0],
        "order_id": order_id,
        "amount": REFUNDS[index],
        "currency": "EUR",
    }
    return {
        **base,
        "id": 900 + index,
        "order_id": order_id,
        "created_at": f"2016-06-20T13:3{index}:06-04:00",
        "transactions": [transaction],
    }


def order(order_id: int, known: int) -> dict[str, Any]:
    """The example order, paid in EUR, as orders/updated sends it once the
    first ``known`` refunds exist."""
    return {
        **example("order"),
        "id": order_id,
        "currency": "EUR",
        "financial_status": "partially_refunded" if known else "paid",
        "updated_at": f"2016-06-20T13:3{known}:30-04:00",
        "refunds": [refund(order_id, index) for index in range(known)],
    }


EVENTS = [("orders/updated", known) for known in range(4)] + [
    ("refunds/create", index) for index in range(3)
]


def body(order_id: int, event: tuple[str, int]) -> tuple[str, dict[str, Any]]:
    topic, n = event
    return topic, order(order_id, n) if topic == "orders/updated" else refund(
        order_id, n
    )


def test_any_order_and_repetition_of_refund_events_gives_the_same_money(
    client: TestClient,
) -> None:
    ids = itertools.count(1)
    expected_refunded = 1250 + 99 + 10000

    def deliver(order_id: int, events: list[tuple[str, int]]) -> None:
        for event in events:
            topic, payload = body(order_id, event)
            raw = body_of(payload)
            headers = shopify_headers(SHOP_SECRET, topic, raw)
            response = client.post("/webhooks/shop", content=raw, headers=headers)
            assert response.status_code in (200, 202), response.text

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(
        st.permutations(EVENTS).flatmap(
            lambda events: st.lists(st.sampled_from(EVENTS), max_size=4).map(
                lambda repeats: [*events, *repeats]
            )
        )
    )
    def same_money(schedule: list[tuple[str, int]]) -> None:
        in_order = next(ids) * 2
        shuffled = in_order + 1
        deliver(in_order, EVENTS)
        deliver(shuffled, schedule)
        caught_up(client)
        rows = [
            client.get(f"/views/orders/{n}", headers=auth("reader")).json()
            for n in (in_order, shuffled)
        ]
        for row in rows:
            assert (row["status"], row["paid_cents"]) == ("paid", 40994)
            assert row["refunded_cents"] == expected_refunded

    same_money()
    caught_up(client)
    revenue = client.get("/views/revenue", headers=auth("reader")).json()["items"]
    orders = 2 * (next(ids) - 1)  # every example delivered two orders
    assert [(r["currency"], r["orders_paid"]) for r in revenue] == [("EUR", orders)]
    (eur,) = revenue
    assert eur["refunded_cents"] == orders * expected_refunded
    assert eur["net_cents"] == orders * (40994 - expected_refunded)
