"""Stripe's own published example objects (``tests/fixtures/stripe``), wrapped
in event envelopes as Stripe posts them, and signed with the ``stripe``
library. Each test states what it changes in an object (the order id in
``metadata``, a status, an amount), on a copy."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import stripe

FIXTURES = Path(__file__).parent / "fixtures" / "stripe" / "fixtures3-objects.json"
OBJECTS: dict[str, dict[str, Any]] = json.loads(FIXTURES.read_text())
"""Stripe's example object of each resource, by its ``object`` name."""


def example(kind: str, **changes: Any) -> dict[str, Any]:
    """A copy of Stripe's example ``kind`` object with ``changes``;
    ``metadata`` changes are merged into the example's metadata."""
    obj = copy.deepcopy(OBJECTS[kind])
    metadata = changes.pop("metadata", None)
    obj.update(changes)
    if metadata is not None:
        obj["metadata"] = {**obj["metadata"], **metadata}
    return obj


def envelope(
    type_: str, obj: dict[str, Any], *, event_id: str, created: int
) -> dict[str, Any]:
    """An event around ``obj``, shaped as Stripe sends it."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def stripe_headers(secret: str, body: bytes) -> dict[str, str]:
    """The headers Stripe sends with ``body``, signed now by the ``stripe``
    library."""
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(time.time())
    )
    return {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "stripe-signature": header,
    }
