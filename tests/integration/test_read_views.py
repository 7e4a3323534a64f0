"""``GET /views/...`` (specification §6) through the real app, on both
backends, after its in-app projection runner caught up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

from tests.partner import Partner, auth, post
from tests.read_models import caught_up
from tests.store import Store


def get(client: TestClient, path: str, **params: Any) -> tuple[int, Any]:
    response = client.get(path, params=params, headers=auth("reader"))
    return response.status_code, response.json()


def is_utc(text: str) -> bool:
    moment = datetime.fromisoformat(text)
    return moment.utcoffset() is not None and moment == moment.astimezone(UTC)


def create_orders(client: TestClient, partner: Partner, count: int) -> list[str]:
    ids = [f"ord_{number:02d}" for number in range(count)]
    for number, order_id in enumerate(ids):
        customer = "cus_even" if number % 2 == 0 else "cus_odd"
        post(client, partner.order_created(order_id, customer_id=customer))
        if number % 3 == 0:
            paid = partner.event("order.paid", order_id=order_id, amount_cents=5000)
            post(client, paid)
    caught_up(client)
    return ids


def test_orders_are_listed_with_every_field_and_times_in_utc(
    client: TestClient, partner: Partner
) -> None:
    create_orders(client, partner, 2)
    status, body = get(client, "/views/orders")
    assert status == 200
    assert body["next_cursor"] is None
    first = body["items"][0]
    assert first["order_id"] == "ord_00"
    assert (first["status"], first["paid_cents"], first["currency"]) == (
        "paid",
        5000,
        "EUR",
    )
    assert first["version"] == 3
    assert is_utc(first["updated_at"])
    assert [item["status"] for item in body["items"]] == ["paid", "created"]


def test_orders_are_filtered_by_status_and_customer(
    client: TestClient, partner: Partner
) -> None:
    create_orders(client, partner, 7)
    _, paid = get(client, "/views/orders", status="paid")
    assert [o["order_id"] for o in paid["items"]] == ["ord_00", "ord_03", "ord_06"]
    _, odd = get(client, "/views/orders", customer_id="cus_odd")
    assert [o["order_id"] for o in odd["items"]] == ["ord_01", "ord_03", "ord_05"]
    _, both = get(client, "/views/orders", customer_id="cus_odd", status="paid")
    assert [o["order_id"] for o in both["items"]] == ["ord_03"]
    _, none = get(client, "/views/orders", status="refunded")
    assert none == {"items": [], "next_cursor": None}


def test_pages_follow_the_cursor_and_show_every_order_exactly_once(
    client: TestClient, partner: Partner
) -> None:
    ids = create_orders(client, partner, 7)
    seen, pages, cursor = [], 0, None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        status, body = get(client, "/views/orders", **params)
        assert status == 200
        assert len(body["items"]) <= 3
        seen += [item["order_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (ids, 3)
    _, odd = get(client, "/views/orders", customer_id="cus_odd", limit=2)
    _, rest = get(
        client, "/views/orders", customer_id="cus_odd", cursor=odd["next_cursor"]
    )
    assert [o["order_id"] for o in odd["items"] + rest["items"]] == [
        "ord_01",
        "ord_03",
        "ord_05",
    ]


def test_one_order_is_found_by_id_and_a_missing_one_is_404(
    client: TestClient, partner: Partner
) -> None:
    create_orders(client, partner, 1)
    status, body = get(client, "/views/orders/ord_00")
    assert (status, body["order_id"], body["status"]) == (200, "ord_00", "paid")
    status, body = get(client, "/views/orders/ord_nope")
    assert (status, body["error"]) == (404, "not_found")
    assert get(client, "/views/customers/cus_nope")[0] == 404


def test_a_customer_shows_its_address_object_and_once_deleted_only_its_id(
    client: TestClient, partner: Partner
) -> None:
    address = {"line1": "1 Rue de la Paix", "city": "Paris", "postal_code": "75002"}
    upsert = partner.event(
        "customer.upserted",
        customer_id="cus_1",
        email="ada@example.com",
        name="Ada",
        address=address,
        sequence=1,
    )
    text_address = partner.event(
        "customer.upserted", customer_id="cus_2", name="Bo", address="{at the docks"
    )
    for request in (upsert, text_address):
        post(client, request)
    caught_up(client)
    status, body = get(client, "/views/customers/cus_1")
    assert status == 200
    assert body["address"] == address
    assert (body["email"], body["name"], body["phone"]) == (
        "ada@example.com",
        "Ada",
        None,
    )
    assert body["deleted"] is False
    assert is_utc(body["updated_at"])
    assert get(client, "/views/customers/cus_2")[1]["address"] == "{at the docks"

    deletion = partner.event("customer.deleted", customer_id="cus_1", sequence=2)
    post(client, deletion)
    caught_up(client)
    status, body = get(client, "/views/customers/cus_1")
    assert status == 200
    assert body["deleted"] is True
    assert [body[name] for name in ("email", "name", "phone", "address")] == [None] * 4


def test_revenue_is_per_currency_net_of_refunds(
    client: TestClient, partner: Partner
) -> None:
    for order_id, currency in (("ord_1", "EUR"), ("ord_2", "EUR"), ("ord_3", "USD")):
        post(client, partner.order_created(order_id, currency=currency))
        post(client, partner.event("order.paid", order_id=order_id, amount_cents=5000))
    post(client, partner.event("order.refunded", order_id="ord_2", amount_cents=1500))
    caught_up(client)
    status, body = get(client, "/views/revenue")
    assert status == 200
    assert body["items"] == [
        {
            "namespace": "acme",
            "currency": "EUR",
            "paid_cents": 10000,
            "refunded_cents": 1500,
            "net_cents": 8500,
            "disputed_cents": 0,
            "orders_paid": 2,
        },
        {
            "namespace": "acme",
            "currency": "USD",
            "paid_cents": 5000,
            "refunded_cents": 0,
            "net_cents": 5000,
            "disputed_cents": 0,
            "orders_paid": 1,
        },
    ]


def test_sources_count_first_outcomes_with_first_and_last_seen(
    client: TestClient, partner: Partner
) -> None:
    before = datetime.now(UTC)
    created = partner.order_created("ord_1")
    for request in (created, partner.order_created("ord_2")):
        post(client, request)
    post(client, created)  # a duplicate is not a delivery
    post(client, partner.event("invoice.paid", invoice_id="in_1"))
    caught_up(client)
    status, body = get(client, "/views/sources")
    assert status == 200
    counts = {(row["source"], row["outcome"]): row["count"] for row in body["items"]}
    assert counts == {("acme", "applied"): 2, ("acme", "ignored"): 1}
    applied = body["items"][0]
    assert is_utc(applied["first_seen"]) and is_utc(applied["last_seen"])
    first_seen = datetime.fromisoformat(applied["first_seen"])
    assert before <= first_seen <= datetime.fromisoformat(applied["last_seen"])


BAD_PARAMETERS = [
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": "1.5"}, "limit"),
    ({"limit": "9" * 5000}, "limit"),  # past int()'s digit limit
    ({"limit": "\u0663"}, "limit"),  # a digit, but not an ASCII one
    ({"limit": ""}, "limit"),
    ({"cursor": "not a cursor!"}, "cursor"),
    ({"cursor": "_w"}, "cursor"),  # base64 of a byte that is not UTF-8
    ({"status": "lost"}, "status"),
    ({"customer_id": "cus\x001"}, "customer_id"),
]


def test_a_bad_parameter_is_a_400_that_names_it(client: TestClient) -> None:
    for params, mentions in BAD_PARAMETERS:
        status, body = get(client, "/views/orders", **params)
        assert (status, body["error"]) == (400, "bad_parameter"), params
        assert mentions in body["message"]


def test_sql_metacharacters_in_parameters_are_only_text(
    client: TestClient, partner: Partner, store: Store
) -> None:
    odd_id = "ord_'; DROP TABLE orders; --"
    post(client, partner.order_created(odd_id, customer_id="cus_' OR '1'='1"))
    post(client, partner.order_created("ord_plain"))
    caught_up(client)
    for probe in ("' OR '1'='1", "%", "_", "\\", '"; SELECT 1; --', "cus_%"):
        status, body = get(client, "/views/orders", customer_id=probe)
        assert (status, body["items"]) == (200, [])
    assert get(client, "/views/orders/' OR '1'='1")[0] == 404
    status, body = get(client, "/views/orders", customer_id="cus_' OR '1'='1")
    assert [item["order_id"] for item in body["items"]] == [odd_id]
    status, body = get(client, "/views/orders/ord_'; DROP TABLE orders; --")
    assert (status, body["order_id"]) == (200, odd_id)
    assert get(client, "/views/orders/ord_%25")[0] == 404
    assert get(client, "/views/customers/cus_%00")[0] == 404
    assert store.count("orders") == 2
