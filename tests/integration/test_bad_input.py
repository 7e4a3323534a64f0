"""Bad input gets the documented 4xx, names the field, and stores nothing.

Contract section 4: a non-2xx means nothing of the delivery was stored, so the
partner's retry is treated as a first delivery.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from infrastructure.schemes.standard_webhooks import sign
from tests.partner import Partner, Request, post
from tests.store import Store

ORDER = {"order_id": "ord_1", "customer_id": "cus_1", "currency": "EUR"}


def envelope(data: object, type_: str = "order.created") -> bytes:
    return json.dumps(
        {"type": type_, "timestamp": "2026-11-01T10:00:00Z", "data": data}
    ).encode()


@pytest.fixture(autouse=True)
def nothing_is_stored(store: Store):  # type: ignore[no-untyped-def]
    yield
    assert store.count("deliveries") == 0
    assert store.count("idemsync_events") == 0


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        (b"{not json", "$", "malformed"),
        (b"", "$", "truncated"),
        (b"[1, 2]", "$", "Expected `object`"),
        (b'{"type": 7}', "$.type", "Expected `str`"),
        (envelope({**ORDER, "total_cents": "12"}), "$.data.total_cents", "`int`"),
        (envelope({**ORDER, "total_cents": -1}), "$.data.total_cents", ">= 0"),
        (envelope({**ORDER, "total_cents": 2**70}), "$.data.total_cents", "<="),
        (envelope(ORDER), "$.data", "total_cents"),
        (
            envelope({**ORDER, "total_cents": 1, "currency": "EURO"}),
            "$.data.currency",
            "",
        ),
        (envelope({"amount_cents": 1}, "order.paid"), "$.data", "order_id"),
        (
            envelope({**ORDER, "order_id": "o\u0000", "total_cents": 1}),
            "$.data.order_id",
            "",
        ),
        (envelope("nope", "order.paid"), "$.data", "Expected `object`"),
        (
            b'{"type": "order.paid", "timestamp": "yesterday", "data": {}}',
            "$.timestamp",
            "datetime",
        ),
        (
            b'{"type": "order.paid", "timestamp": "2026-11-01T10:00:00", "data": {}}',
            "$.timestamp",
            "timezone",
        ),
        (envelope([[[[[[[[[[[]]]]]]]]]]] * 100, "order.paid"), "$.data", ""),
        (
            b'{"type": "order.paid", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "$",
            "nested too deeply",
        ),
    ],
)
def test_a_payload_that_is_not_json_or_not_the_schema_is_400_naming_the_field(
    client: TestClient, partner: Partner, body: bytes, path: str, words: str
) -> None:
    status, answer, _ = post(client, partner.sign(body))
    assert status == 400
    assert answer["error"] == "invalid_payload"
    assert answer["path"].startswith(path or "$")
    assert words in answer["message"]


def test_invalid_utf8_is_400(client: TestClient, partner: Partner) -> None:
    # The reference library signs str only; ours is checked against it in
    # tests/unit/test_standard_webhooks_scheme.py.
    body = envelope({"order_id": "ord_1", "amount_cents": 1}, "order.paid")
    body = body.replace(b"ord_1", b"ord_\xff")
    key, timestamp = "msg_utf8", int(datetime.now(UTC).timestamp())
    headers = {
        "webhook-id": key,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(partner.secret, key, timestamp, body),
    }
    status, answer, _ = post(client, Request(key, body, headers))
    assert (status, answer["error"]) == (400, "invalid_payload")


def test_a_body_over_max_body_bytes_is_413_before_it_is_verified(
    client: TestClient, partner: Partner
) -> None:
    big = envelope({**ORDER, "total_cents": 1, "note": "x" * 70_000})
    status, answer, _ = post(client, partner.sign(big))
    assert (status, answer["error"]) == (413, "payload_too_large")


def test_a_body_over_the_limit_without_content_length_is_413(
    client: TestClient, partner: Partner
) -> None:
    request = partner.sign(envelope({**ORDER, "total_cents": 1, "note": "x" * 70_000}))

    def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(request.body), 8192):
            yield request.body[start : start + 8192]

    response = client.post("/webhooks/acme", content=chunks(), headers=request.headers)
    assert response.status_code == 413


def test_a_tampered_body_is_401_without_detail(
    client: TestClient, partner: Partner
) -> None:
    request = partner.sign(envelope({**ORDER, "total_cents": 1}))
    tampered = Request(request.key, request.body.replace(b"1}", b"9}"), request.headers)
    status, answer, _ = post(client, tampered)
    assert status == 401
    assert answer == {
        "error": "unauthorized",
        "message": "signature missing or invalid",
    }


def test_a_signature_made_with_another_secret_is_401(client: TestClient) -> None:
    stranger = Partner("whsec_" + "c3RyYW5nZXJzdHJhbmdlcnN0cmFuZ2Vy")
    status, _, _ = post(client, stranger.sign(envelope({**ORDER, "total_cents": 1})))
    assert status == 401


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_timestamp_outside_the_tolerance_is_401(
    client: TestClient, partner: Partner, skew: timedelta
) -> None:
    at = datetime.now(UTC) + skew
    status, _, _ = post(
        client, partner.sign(envelope({**ORDER, "total_cents": 1}), at=at)
    )
    assert status == 401


@pytest.mark.parametrize("header", ["webhook-signature", "webhook-timestamp"])
def test_a_missing_signature_header_is_401(
    client: TestClient, partner: Partner, header: str
) -> None:
    request = partner.sign(envelope({**ORDER, "total_cents": 1}))
    del request.headers[header]
    assert post(client, request)[0] == 401


def test_a_delivery_without_its_idempotency_key_is_refused(
    client: TestClient, partner: Partner
) -> None:
    request = partner.sign(envelope({**ORDER, "total_cents": 1}))
    del request.headers["webhook-id"]
    status, _, _ = post(client, request)
    assert status in (400, 401)


def test_an_unknown_source_is_404(client: TestClient, partner: Partner) -> None:
    request = partner.sign(envelope({**ORDER, "total_cents": 1}))
    status, answer, _ = post(client, request, source="nobody")
    assert (status, answer["error"]) == (404, "unknown_source")
