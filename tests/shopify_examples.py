"""Shopify's published example objects (``tests/fixtures/shopify``, see its
README) as webhook deliveries, signed as Shopify signs them."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

from infrastructure.source_settings import SourceSettings

FIXTURES = Path(__file__).parent / "fixtures" / "shopify"
TRIGGERED_AT = "2026-01-10T12:00:00Z"


def shop_source(secret: str) -> SourceSettings:
    """The source ``shop``: Shopify's scheme, its default mapping."""
    return SourceSettings(
        name="shop",
        scheme="shopify",
        secrets=(secret,),
        mapping="shopify",
        mapping_is_default=True,
    )


def example(name: str) -> dict[str, Any]:
    """The object of the fixture ``name`` (``order``, ``refund``, …): the REST
    response wraps it in ``{"<name>": …}``; a webhook's body is the object."""
    wrapped = json.loads((FIXTURES / f"{name}.json").read_text())
    return copy.deepcopy(wrapped[name])


def shopify_signature(secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of the HMAC-SHA256 of the raw body,
    keyed with the app's client secret (Shopify's "Verify webhooks")."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def shopify_headers(
    secret: str, topic: str, body: bytes, webhook_id: str | None = None
) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": shopify_signature(secret, body),
        "x-shopify-shop-domain": "example.myshopify.com",
        "x-shopify-api-version": "2025-01",
        "x-shopify-webhook-id": webhook_id or str(uuid.uuid4()),
        "x-shopify-triggered-at": TRIGGERED_AT,
    }


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
