"""Shopify: ``X-Shopify-Hmac-Sha256``, the base64 HMAC-SHA256 of the raw body
keyed with the app's client secret.

Shopify signs no timestamp (``X-Shopify-Triggered-At`` is not covered by the
signature), so there is no replay window to check. The key is
``X-Shopify-Webhook-Id``, the same across Shopify's retries.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from infrastructure.schemes import Unauthorized
from infrastructure.schemes.signing import (
    check_signatures,
    key_header,
    required,
    utf8_keys,
)


class Shopify:
    """Verifies Shopify's HMAC header against every configured secret."""

    key_is_signed = False
    stored_headers: tuple[str, ...] = (
        "x-shopify-webhook-id",
        "x-shopify-topic",
        "x-shopify-hmac-sha256",
        "x-shopify-shop-domain",
        "x-shopify-api-version",
        "x-shopify-triggered-at",
        "x-shopify-event-id",
    )

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keys = utf8_keys(secrets)

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
        value = required(headers, "x-shopify-hmac-sha256")
        try:
            signature = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            raise Unauthorized("malformed signature header") from None
        check_signatures(self._keys, body, [signature])
        return body

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return key_header(headers, "x-shopify-webhook-id")
