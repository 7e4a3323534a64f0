"""An operator settles a parked delivery by hand (specification §13), on both
backends, through the real app: ``discard`` drops it from the queue for ever,
``release`` decides it now on an object that exists, and each is recorded as
an event on the object that names who did it and why, and as the delivery's
resolution. Only ``admin`` may; a delivery that is not waiting is a 409."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from domain.commands import CreateOrder
from domain.order import Order
from tests.partner import Partner, Request, auth, post
from web.state import app_state

REASON = "order deleted at the partner"


def settle(
    client: TestClient, action: str, request: Request, role: str = "admin", **query: str
) -> tuple[int, Any]:
    response = client.post(
        f"/admin/parked/acme/{request.key}/{action}",
        params={"reason": REASON, **query},
        headers=auth(role),
    )
    return response.status_code, response.json()


def queue(client: TestClient) -> list[str]:
    response = client.get(
        "/audit/deliveries",
        params={"outcome": "parked", "unresolved": "1"},
        headers=auth("auditor"),
    )
    assert response.status_code == 200, response.text
    return [item["key"] for item in response.json()["items"]]


def events(client: TestClient, order_id: str) -> list[dict[str, Any]]:
    response = client.get(
        f"/audit/aggregates/order/{order_id}/events", headers=auth("auditor")
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["events"]
    return found


def test_a_discarded_delivery_leaves_the_queue_and_is_never_applied(
    client: TestClient, partner: Partner
) -> None:
    early = partner.event("order.paid", order_id="ord_9", amount_cents=100)
    other = partner.event("order.paid", order_id="ord_8", amount_cents=100)
    for request in (early, other):
        assert post(client, request)[1]["outcome"] == "parked"
    assert queue(client) == [early.key, other.key]

    assert settle(client, "discard", early, role="auditor")[0] == 403
    assert (
        client.post(
            f"/admin/parked/acme/{early.key}/discard", headers=auth("admin")
        ).status_code
        == 400
    ), "a reason is required"
    status, body = settle(client, "discard", early)
    assert status == 200, body
    assert body == {
        "source": "acme",
        "key": early.key,
        "action": "discard",
        "by": "test-admin",
        "resolution": "ignored",
        "reason": f"discarded by test-admin: {REASON}",
    }
    assert queue(client) == [other.key]
    discarded = [e for e in events(client, "ord_9") if e["type"] == "Discarded"]
    assert len(discarded) == 1
    assert discarded[0]["data"]["by"] == "test-admin"
    assert discarded[0]["data"]["reason"] == REASON
    assert discarded[0]["delivery"] == {"source": "acme", "key": early.key}

    record = client.get(
        f"/audit/deliveries/acme/{early.key}", headers=auth("auditor")
    ).json()
    assert (record["outcome"], record["resolution"]) == ("parked", "ignored")
    assert settle(client, "discard", early)[0] == 409
    assert settle(client, "release", early)[0] == 409

    replayed = client.post(
        "/admin/replay", params={"source": "acme"}, headers=auth("admin")
    ).json()
    again = {d["key"]: d for d in replayed["deliveries"]}[early.key]
    assert (again["before"], again["now"], again["changed"]) == (
        "ignored",
        "ignored",
        False,
    ), "a replay leaves a discarded delivery alone (it would park it again)"
    assert queue(client) == [other.key]

    assert post(client, partner.order_created("ord_9"))[1]["outcome"] == "applied"
    service = app_state(client.app).services.service  # type: ignore[attr-defined]
    order = service.find("order", "ord_9", "acme")
    assert isinstance(order, Order)
    assert order.status == "created", "the discarded payment was never applied"
    assert order.parked == []


def test_a_release_waits_for_its_object_then_decides_it_now(
    client: TestClient, partner: Partner
) -> None:
    early = partner.event("order.paid", order_id="ord_7", amount_cents=5000)
    assert post(client, early)[1]["outcome"] == "parked"
    status, body = settle(client, "release", early)
    assert (status, body["error"]) == (409, "not_yet_created")
    assert queue(client) == [early.key]
    assert [e["type"] for e in events(client, "ord_7")] == ["Tracked", "Parked"]

    # An order that exists while a delivery still waits on it: what a store
    # holds when its creation came before release-on-create (written here by
    # hand, as that older code did).
    service = app_state(client.app).services.service  # type: ignore[attr-defined]
    order = service.find("order", "ord_7", "acme")
    created = CreateOrder(
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        order_id="ord_7",
        customer_id="cus_1",
        currency="EUR",
        total_cents=5000,
    )
    order.record(created, {"status": "created"}, created.position(), "acme", "k0")
    service.save(order)

    status, body = settle(client, "release", early)
    assert status == 200, body
    assert (body["action"], body["resolution"], body["by"]) == (
        "release",
        "applied",
        "test-admin",
    )
    assert queue(client) == []
    kinds = [e["type"] for e in events(client, "ord_7")]
    assert kinds[-2:] == ["HandedOn", "Paid"]
    handed_on = events(client, "ord_7")[-2]
    assert handed_on["data"]["by"] == "test-admin"
    assert handed_on["data"]["reason"] == REASON
    assert service.find("order", "ord_7", "acme").status == "paid"


@pytest.mark.parametrize("action", ["release", "discard"])
def test_an_unknown_delivery_is_not_parked(
    client: TestClient, partner: Partner, action: str
) -> None:
    applied = partner.order_created("ord_1")
    assert post(client, applied)[1]["outcome"] == "applied"
    for request in (applied, partner.order_created("ord_never_sent")):
        status, body = settle(client, action, request)
        assert (status, body["error"]) == (409, "not_parked"), body
