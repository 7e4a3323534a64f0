"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]``.

Each ``v1`` is the hex HMAC-SHA256 of ``"{t}.{raw body}"`` keyed with the whole
endpoint secret (``whsec_…``) as UTF-8 bytes, not base64-decoded. The key is
the event's ``id`` (``evt_…``), the same across Stripe's retries.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence

from infrastructure.schemes import Unauthorized
from infrastructure.schemes.keys import body_value
from infrastructure.schemes.signing import (
    check_signatures,
    check_timestamp,
    required,
    utf8_keys,
)


class Stripe:
    """Verifies Stripe's signature header against every configured secret."""

    key_is_signed = True
    stored_headers: tuple[str, ...] = ("stripe-signature",)

    def __init__(self, secrets: Sequence[str], tolerance_seconds: int) -> None:
        self._keys = utf8_keys(secrets)
        self._tolerance = tolerance_seconds

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
        timestamp, signatures = _parse(required(headers, "stripe-signature"))
        check_timestamp(timestamp, now, self._tolerance)
        signed = f"{timestamp}.".encode() + body
        check_signatures(self._keys, signed, signatures)
        return signed

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return body_value(body, ("id",))


def _parse(header: str) -> tuple[str, list[bytes]]:
    timestamp, signatures = "", []
    for item in header.split(","):
        name, equals, value = item.strip().partition("=")
        if not equals:
            raise Unauthorized("malformed signature header")
        if name == "t":
            timestamp = value
        elif name == "v1":
            try:
                signatures.append(binascii.unhexlify(value))
            except (binascii.Error, ValueError):
                raise Unauthorized("malformed signature header") from None
    if not timestamp:
        raise Unauthorized("missing timestamp in stripe-signature")
    return timestamp, signatures
