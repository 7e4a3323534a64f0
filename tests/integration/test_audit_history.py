"""A scripted day of one order, asked back through ``/audit`` (specification
§7): every answer matches the script, including ``as_of`` at each
step, on both backends."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.partner import Partner, Request, auth, post
from web.state import app_state

ORDER = "ord_day"


@dataclass(frozen=True)
class Step:
    """One delivery of the script, what it must be answered, and the order's
    status right after it."""

    name: str
    type: str
    data: dict[str, Any]
    outcome: str
    status: str | None


SCRIPT = [
    Step(
        "early payment",
        "order.paid",
        {"sequence": 2, "amount_cents": 5000},
        "parked",
        None,
    ),
    Step(
        "creation",
        "order.created",
        {"sequence": 1, "customer_id": "cus_1", "currency": "EUR", "total_cents": 5000},
        "applied",
        "paid",
    ),
    Step(
        "shipping",
        "order.shipped",
        {"sequence": 3, "carrier": "DHL", "tracking_number": "T1"},
        "applied",
        "shipped",
    ),
    Step(
        "old payment",
        "order.paid",
        {"sequence": 1, "amount_cents": 1},
        "stale",
        "shipped",
    ),
    Step(
        "late cancel",
        "order.cancelled",
        {"sequence": 4, "reason": "too late"},
        "rejected",
        "shipped",
    ),
    Step("delivery", "order.delivered", {"sequence": 5}, "applied", "delivered"),
]


@dataclass
class Day:
    """The script as it ran: each step's request and the time just after it."""

    requests: dict[str, Request]
    after: dict[str, datetime]
    start: datetime


def audit(client: TestClient, path: str, **params: Any) -> tuple[int, Any]:
    response = client.get(path, params=params, headers=auth("auditor"))
    return response.status_code, response.json()


@pytest.fixture
def day(client: TestClient, partner: Partner) -> Day:
    start = datetime.now(UTC)
    time.sleep(0.002)
    requests, after = {}, {}
    for step in SCRIPT:
        request = partner.event(step.type, order_id=ORDER, **step.data)
        status, body, _ = post(client, request)
        assert (status, body["outcome"]) == (
            202 if step.outcome == "parked" else 200,
            step.outcome,
        ), step.name
        requests[step.name] = request
        if step.name == "creation":
            for _ in range(2):
                assert post(client, request)[1]["outcome"] == "duplicate"
        time.sleep(0.002)
        after[step.name] = datetime.now(UTC)
        time.sleep(0.002)
    app_state(client.app).sightings.flush()  # type: ignore[attr-defined]
    return Day(requests, after, start)


def test_the_history_of_the_order_tells_each_event_with_its_delivery(
    client: TestClient, day: Day
) -> None:
    status, body = audit(client, f"/audit/aggregates/order/{ORDER}/events")
    assert status == 200
    story = [
        (e["aggregate"]["version"], e["type"], e["delivery"]["key"])
        for e in body["events"]
    ]
    key = {name: request.key for name, request in day.requests.items()}
    assert story == [
        (1, "Tracked", key["early payment"]),
        (2, "Parked", key["early payment"]),
        (3, "Created", key["creation"]),
        (4, "Released", key["creation"]),
        (5, "Paid", key["early payment"]),
        (6, "Shipped", key["shipping"]),
        (7, "Delivered", key["delivery"]),
    ]
    shipped = body["events"][5]
    assert shipped["data"]["changes"] == {
        "status": "shipped",
        "carrier": "DHL",
        "tracking_number": "T1",
    }
    assert shipped["occurred_at"] is not None
    recorded = [datetime.fromisoformat(e["recorded_at"]) for e in body["events"]]
    assert recorded == sorted(recorded)
    assert recorded[0] > day.start
    assert body["next_cursor"] is None


def test_the_history_pages_by_version_with_a_cursor(
    client: TestClient, day: Day
) -> None:
    path = f"/audit/aggregates/order/{ORDER}/events"
    versions, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        status, body = audit(client, path, **params)
        assert status == 200
        versions += [e["aggregate"]["version"] for e in body["events"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert versions == list(range(1, 8))


def test_the_state_as_of_each_step_is_the_state_the_script_left(
    client: TestClient, day: Day
) -> None:
    path = f"/audit/aggregates/order/{ORDER}"
    status, _ = audit(client, path, as_of=day.start.isoformat())
    assert status == 404
    for step in SCRIPT:
        status, body = audit(client, path, as_of=day.after[step.name].isoformat())
        assert status == 200, step.name
        assert body["status"] == step.status, step.name
        assert body["exists"] is (step.status is not None)
    first = day.after["early payment"].isoformat()
    parked = audit(client, path, as_of=first)[1]["parked"]
    assert parked == [
        {
            "source": "acme",
            "key": day.requests["early payment"].key,
            "type": "order.paid",
        }
    ]
    late = audit(client, path, as_of=day.after["late cancel"].isoformat())[1]
    assert late["fields"]["paid_cents"] == 5000
    assert late["fields"]["carrier"] == "DHL"
    assert late["aggregate"]["version"] == 6


def test_the_state_at_a_version_is_the_state_after_that_event(
    client: TestClient, day: Day
) -> None:
    path = f"/audit/aggregates/order/{ORDER}"
    assert audit(client, path, version=3)[1]["status"] == "created"
    assert audit(client, path, version=5)[1]["status"] == "paid"
    now = audit(client, path)[1]
    assert (now["status"], now["aggregate"]["version"]) == ("delivered", 7)
    assert audit(client, path, version=8)[0] == 404
    assert audit(client, path, version=0)[0] == 400
    assert audit(client, path, version=2, as_of=day.start.isoformat())[0] == 400


def test_each_delivery_tells_what_became_of_it_and_what_it_caused(
    client: TestClient, day: Day
) -> None:
    def delivery(name: str) -> dict[str, Any]:
        key = day.requests[name].key
        status, body = audit(client, f"/audit/deliveries/acme/{key}")
        assert status == 200, name
        return dict(body)

    created = delivery("creation")
    assert (created["outcome"], created["attempts"]) == ("applied", 3)
    assert created["last_seen_at"] > created["received_at"]
    assert json.loads(created["payload"])["type"] == "order.created"
    assert created["payload_encoding"] == "utf-8"
    caused = [(e["aggregate"]["type"], e["type"]) for e in created["events"]]
    assert caused == [
        ("order", "Created"),
        ("order", "Released"),
        ("delivery", "Issued"),
    ]
    early = delivery("early payment")
    assert (early["outcome"], early["resolution"]) == ("parked", "applied")
    assert [e["type"] for e in early["events"]] == [
        "Tracked",
        "Parked",
        "Issued",
        "Paid",
        "Resolved",
    ]
    stale = delivery("old payment")
    assert stale["outcome"] == "stale" and stale["attempts"] == 1
    assert stale["last_seen_at"] == stale["received_at"]
    assert [e["type"] for e in stale["events"]] == ["Issued"]
    rejected = delivery("late cancel")
    assert rejected["outcome"] == "rejected"
    assert "cancelled" in rejected["reason"] or "shipped" in rejected["reason"]
    assert audit(client, "/audit/deliveries/acme/msg_never")[0] == 404


def test_deliveries_are_listed_in_the_order_received_and_filtered(
    client: TestClient, day: Day
) -> None:
    keys, cursor = [], None
    while True:
        params = {
            "source": "acme",
            "limit": 4,
            **({"cursor": cursor} if cursor else {}),
        }
        status, body = audit(client, "/audit/deliveries", **params)
        assert status == 200
        keys += [item["key"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert keys == [day.requests[step.name].key for step in SCRIPT]
    _, stale = audit(client, "/audit/deliveries", outcome="stale")
    assert [item["key"] for item in stale["items"]] == [day.requests["old payment"].key]
    since = day.after["shipping"].isoformat()
    _, later = audit(client, "/audit/deliveries", since=since)
    assert len(later["items"]) == 3
    until = day.after["early payment"].isoformat()
    _, earlier = audit(client, "/audit/deliveries", until=until)
    assert len(earlier["items"]) == 1
    assert audit(client, "/audit/deliveries", outcome="duplicate")[0] == 400
    assert audit(client, "/audit/deliveries", since="yesterday")[0] == 400
    assert audit(client, "/audit/deliveries", cursor="not-a-cursor")[0] == 400


def test_deliveries_are_found_by_key_by_object_and_by_text_of_their_payload(
    client: TestClient, day: Day, partner: Partner
) -> None:
    other = partner.order_created("ord_other")
    assert post(client, other)[1]["outcome"] == "applied"
    shipping = day.requests["shipping"]

    def keys(**params: Any) -> list[str]:
        status, body = audit(client, "/audit/deliveries", **params)
        assert status == 200, body
        return [item["key"] for item in body["items"]]

    assert keys(key=shipping.key) == [shipping.key]
    assert keys(key=shipping.key + "x") == []
    assert keys(object=ORDER) == [day.requests[step.name].key for step in SCRIPT]
    assert keys(object="ord_other") == [other.key]
    assert keys(contains="DHL") == [shipping.key]
    assert keys(contains="too late", outcome="rejected") == [
        day.requests["late cancel"].key
    ]
    assert keys(contains="ord_other") == [other.key]
    assert keys(contains="TOO LATE") == []  # case-sensitive, as documented
    assert audit(client, "/audit/deliveries", contains="")[0] == 400
    assert audit(client, "/audit/deliveries", contains="x" * 201)[0] == 400


def test_the_global_log_is_in_order_and_streams_as_ndjson(
    client: TestClient, day: Day
) -> None:
    status, body = audit(client, "/audit/events", limit=5)
    assert status == 200
    first = [e["position"] for e in body["events"]]
    assert first == sorted(first) and len(first) == 5
    _, rest = audit(client, "/audit/events", after=body["next_after"], limit=1000)
    positions = first + [e["position"] for e in rest["events"]]
    assert rest["next_after"] is None
    response = client.get(
        "/audit/events",
        headers={**auth("auditor"), "accept": "application/x-ndjson"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["position"] for line in lines] == positions
    assert len(positions) == len(set(positions))
    order_events = [e for e in lines if e["aggregate"]["id"] == ORDER]
    assert len(order_events) == 7


def test_an_unknown_aggregate_type_or_object_is_not_found(
    client: TestClient, day: Day
) -> None:
    assert audit(client, "/audit/aggregates/invoice/inv_1")[0] == 404
    assert audit(client, "/audit/aggregates/order/ord_none/events")[0] == 404
    assert audit(client, "/audit/aggregates/order/ord_none")[0] == 404
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    status, body = audit(client, f"/audit/aggregates/order/{ORDER}", as_of=later)
    assert (status, body["status"]) == (200, "delivered")


def test_an_objects_chain_status_says_intact_and_counts_its_events(
    client: TestClient, day: Day
) -> None:
    status, chain = audit(client, f"/audit/aggregates/order/{ORDER}/chain")
    assert status == 200, chain
    _, events = audit(client, f"/audit/aggregates/order/{ORDER}/events")
    assert chain["intact"] is True and chain["findings"] == []
    assert chain["events"] == chain["ledger_rows"] == len(events["events"])
    assert chain["aggregate"] == {"type": "order", "id": ORDER, "namespace": "acme"}
    assert audit(client, "/audit/aggregates/order/ord_never/chain")[0] == 404
    assert audit(client, "/audit/aggregates/ship/ord_1/chain")[0] == 404
