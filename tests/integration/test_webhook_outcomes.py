"""Every outcome of specification §4, through the real ASGI app, on both
backends: status code, body, and what was (or was not) stored."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.partner import Partner, Request, post
from tests.store import Store

RECEIPT_ISSUED = "domain.receipt:Receipt.Issued"


def test_a_new_order_is_applied_and_its_record_is_committed_with_its_events(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_1", currency="eur")
    status, body, _ = post(client, request)
    assert status == 200
    assert body == {
        "outcome": "applied",
        "source": "acme",
        "key": request.key,
        "aggregate": {
            "type": "order",
            "id": "ord_1",
            "namespace": "acme",
            "version": 2,
        },
    }
    record = store.delivery("acme", request.key)
    assert record is not None
    assert record["outcome"] == "applied"
    assert record["answer"] == body
    assert record["payload"] == request.body
    assert record["aggregate_version"] == 2
    assert store.topics() == [
        "domain.order:Order.Created",
        "domain.order:Order.Tracked",
        RECEIPT_ISSUED,
    ]
    assert store.state("order", "ord_1")["values"]["currency"] == "EUR"


def test_the_same_bytes_again_are_a_duplicate_with_the_first_answer_and_no_write(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_1")
    _, first, _ = post(client, request)
    events, deliveries = store.count("idemsync_events"), store.count("deliveries")
    for _ in range(3):
        status, body, headers = post(client, request)
        assert status == 200
        assert headers["idempotent-replayed"] == "true"
        assert body == {
            "outcome": "duplicate",
            "source": "acme",
            "key": request.key,
            "first": first,
        }
    assert store.count("idemsync_events") == events
    assert store.count("deliveries") == deliveries


def test_a_retry_whose_record_was_pruned_gets_the_first_answer_from_its_receipt(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_1")
    _, first, _ = post(client, request)
    store.forget("acme", request.key)
    events = store.topics()
    status, body, headers = post(client, partner.sign(request.body, key=request.key))
    assert (status, body["outcome"], body["first"]) == (200, "duplicate", first)
    assert headers["idempotent-replayed"] == "true"
    assert store.topics() == events


def test_a_retry_signed_at_another_time_is_still_a_duplicate(
    client: TestClient, partner: Partner
) -> None:
    request = partner.order_created("ord_1")
    post(client, request)
    retry = partner.sign(request.body, key=request.key)
    status, body, _ = post(client, retry)
    assert (status, body["outcome"]) == (200, "duplicate")


def test_an_older_event_is_stale_and_changes_nothing(
    client: TestClient, partner: Partner, store: Store
) -> None:
    post(client, partner.order_created("ord_1", sequence=5))
    request = partner.event("order.paid", order_id="ord_1", amount_cents=10, sequence=5)
    post(client, request)
    order_events = store.topics("domain.order:")
    older = partner.event("order.paid", order_id="ord_1", amount_cents=99, sequence=4)
    status, body, _ = post(client, older)
    assert status == 200
    assert body["outcome"] == "stale"
    assert body["reason"]
    assert body["aggregate"] == {
        "type": "order",
        "id": "ord_1",
        "namespace": "acme",
        "version": 3,
    }
    assert store.topics("domain.order:") == order_events
    assert store.topics("domain.receipt:").count(RECEIPT_ISSUED) == 3
    assert store.state("order", "ord_1")["values"]["paid_cents"] == 10
    assert store.delivery("acme", older.key)["outcome"] == "stale"


def test_an_illegal_transition_is_rejected_recorded_with_its_reason_and_changes_nothing(
    client: TestClient, partner: Partner, store: Store
) -> None:
    post(client, partner.order_created("ord_1"))
    post(client, partner.event("order.cancelled", order_id="ord_1", reason="fraud"))
    order_events = store.topics("domain.order:")
    ship = partner.event(
        "order.shipped", order_id="ord_1", carrier="ups", tracking_number="1Z"
    )
    status, body, _ = post(client, ship)
    assert status == 200
    assert body["outcome"] == "rejected"
    assert "cancelled" in body["reason"]
    assert store.topics("domain.order:") == order_events
    record = store.delivery("acme", ship.key)
    assert (record["outcome"], record["reason"]) == ("rejected", body["reason"])
    assert store.state("order", "ord_1")["status"] == "cancelled"


def test_a_type_without_mapping_is_ignored_and_recorded(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.event("invoice.finalized", invoice_id="in_1")
    status, body, _ = post(client, request)
    assert status == 200
    assert body["outcome"] == "ignored"
    assert "invoice.finalized" in body["reason"]
    assert "aggregate" not in body
    assert store.delivery("acme", request.key)["outcome"] == "ignored"
    assert store.topics() == [RECEIPT_ISSUED]


def test_an_event_for_an_unknown_order_is_parked_then_applied_in_order_on_creation(
    client: TestClient, partner: Partner, store: Store
) -> None:
    shipped = partner.event(
        "order.shipped",
        order_id="ord_9",
        carrier="dhl",
        tracking_number="JD1",
        sequence=3,
    )
    paid = partner.event("order.paid", order_id="ord_9", amount_cents=700, sequence=2)
    for request in (shipped, paid):
        status, body, _ = post(client, request)
        assert status == 202
        assert body["outcome"] == "parked"
        assert "does not exist yet" in body["reason"]
    assert store.state("order", "ord_9")["status"] is None

    status, body, _ = post(client, partner.order_created("ord_9", sequence=1))
    assert (status, body["outcome"]) == (200, "applied")
    state = store.state("order", "ord_9")
    assert state["status"] == "shipped"
    assert state["values"]["paid_cents"] == 700
    assert state["values"]["tracking_number"] == "JD1"
    assert state["parked"] == []
    for request in (shipped, paid):
        record = store.delivery("acme", request.key)
        assert (record["outcome"], record["resolution"]) == ("parked", "applied")
    status, body, _ = post(client, paid)
    assert body["outcome"] == "duplicate"
    assert body["first"]["outcome"] == "parked"


def test_a_customer_is_upserted_deleted_and_then_refuses_newer_updates(
    client: TestClient, partner: Partner, store: Store
) -> None:
    upsert = partner.event(
        "customer.upserted", customer_id="cus_7", email="a@example.com", sequence=1
    )
    assert post(client, upsert)[1]["outcome"] == "applied"
    delete = partner.event("customer.deleted", customer_id="cus_7", sequence=2)
    assert post(client, delete)[1]["outcome"] == "applied"
    newer = partner.event(
        "customer.upserted", customer_id="cus_7", name="Back", sequence=3
    )
    assert post(client, newer)[1]["outcome"] == "rejected"
    state = store.state("customer", "cus_7")
    assert state["status"] == "deleted"
    assert state["values"]["email"] is None


def test_a_refused_delivery_stores_nothing_so_its_retry_is_a_first_delivery(
    client: TestClient, partner: Partner, store: Store
) -> None:
    good = partner.order_created("ord_1")
    tampered = Request(good.key, good.body.replace(b"5000", b"9000"), good.headers)
    assert post(client, tampered)[0] == 401
    assert store.delivery("acme", good.key) is None
    retry = partner.sign(good.body, key=good.key)
    status, body, _ = post(client, retry)
    assert (status, body["outcome"]) == (200, "applied")


def test_health_is_open_and_ready_means_migrated(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})
