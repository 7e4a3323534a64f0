"""Webhook deliveries of any shape, for property tests: arbitrary bytes and
JSON, envelopes of the ``standard`` mapping with arbitrary contents, and
deliveries it decides (applied, parked, stale, rejected...); and Standard
Webhooks headers that sign any bytes."""

from __future__ import annotations

import base64
import hmac
import json
import time

from hypothesis import strategies as st

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
IDS = st.sampled_from(["ord_1", "ord_2", "ord_9", "cus_1"]) | st.text(max_size=5)
ENVELOPES = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "order.created",
                "order.paid",
                "order.shipped",
                "order.cancelled",
                "order.refunded",
                "customer.upserted",
                "customer.deleted",
                "x",
            ]
        )
        | st.text(max_size=12),
        "timestamp": st.sampled_from(
            ["2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00Z", "yesterday"]
        )
        | st.text(max_size=30),
        "data": st.fixed_dictionaries(
            {"order_id": IDS, "customer_id": IDS},
            optional={
                "currency": st.sampled_from(["EUR", "usd", ""]),
                "total_cents": st.integers(),
                "amount_cents": st.integers(),
                "carrier": st.text(max_size=4),
                "tracking_number": st.text(max_size=4),
                "email": st.none() | st.text(max_size=4),
                "sequence": st.integers(),
            },
        )
        | JSON_VALUES,
    }
)
ORDER_IDS = st.sampled_from(["ord_1", "ord_2", "ord_9"])
CENTS = st.integers(0, 10_000)
STANDARD_DATA = {
    "order.created": {
        "order_id": ORDER_IDS,
        "customer_id": st.just("cus_1"),
        "currency": st.sampled_from(["EUR", "USD"]),
        "total_cents": CENTS,
    },
    "order.paid": {"order_id": ORDER_IDS, "amount_cents": CENTS},
    "order.shipped": {
        "order_id": ORDER_IDS,
        "carrier": st.just("DHL"),
        "tracking_number": st.just("T1"),
    },
    "order.cancelled": {"order_id": ORDER_IDS},
    "order.refunded": {"order_id": ORDER_IDS, "amount_cents": CENTS},
    "customer.upserted": {"customer_id": st.just("cus_1"), "email": st.just("a@b")},
    "customer.deleted": {"customer_id": st.just("cus_1")},
}
MAPPED = st.one_of(
    [
        st.fixed_dictionaries(
            {
                "type": st.just(type_),
                "timestamp": st.integers(1, 28).map(
                    lambda day: f"2026-11-{day:02d}T00:00:00+00:00"
                ),
                "data": st.fixed_dictionaries(
                    data, optional={"sequence": st.integers(0, 5)}
                ),
            }
        )
        for type_, data in STANDARD_DATA.items()
    ]
)
"""Deliveries the ``standard`` mapping decides: applied, parked, stale..."""
BODIES = (
    st.binary(max_size=64)
    | JSON_VALUES.map(lambda value: json.dumps(value).encode())
    | ENVELOPES.map(lambda value: json.dumps(value).encode())
    | MAPPED.map(lambda value: json.dumps(value).encode())
)
HEADER_VALUES = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40
)


def signed_headers(secret: str, key: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers signing any bytes (the reference library
    signs text only)."""
    timestamp = str(int(time.time()))
    signed = f"{key}.{timestamp}.".encode() + body
    digest = hmac.new(base64.b64decode(secret.removeprefix("whsec_")), signed, "sha256")
    return {
        "webhook-id": key,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(digest.digest()).decode(),
        "content-type": "application/json",
    }
