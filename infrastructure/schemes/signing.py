"""What every HMAC scheme shares: digests, constant-time matching, headers and
the signed-timestamp window."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from infrastructure.schemes import Unauthorized


def digest(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def check_signatures(
    keys: Sequence[bytes], message: bytes, candidates: Sequence[bytes]
) -> None:
    """Pass if any candidate equals the HMAC-SHA256 of ``message`` under any
    key (rotation); every pair is compared in constant time."""
    if not candidates:
        raise Unauthorized("no signature")
    matched = False
    for key in keys:
        expected = digest(key, message)
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise Unauthorized("no matching signature")


HTTP_SPACE = " \t"
"""What HTTP trims around a header value; ``str.strip()`` would also trim
NBSP (``\xa0``) and ``\x85``, bytes h11 passes on in a value: then a signed
``webhook-id`` and the idempotency key read from it would differ."""


def header(headers: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` that is present and not blank, trimmed as
    HTTP trims; else None."""
    for name in names:
        value = (headers.get(name) or "").strip(HTTP_SPACE)
        if value:
            return value
    return None


def required(headers: Mapping[str, str], *names: str) -> str:
    """``header`` of ``names``; missing: Unauthorized."""
    value = header(headers, *names)
    if value is None:
        raise Unauthorized(f"missing header {names[0]}")
    return value


def check_timestamp(value: str, now: float, tolerance_seconds: int) -> None:
    """A signed unix timestamp must be within the window, past and future."""
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        raise Unauthorized("invalid timestamp")
    if abs(now - int(value)) > tolerance_seconds:
        raise Unauthorized("timestamp outside tolerance")


def utf8_keys(secrets: Sequence[str]) -> tuple[bytes, ...]:
    """Schemes whose secret is used as the HMAC key as it is written."""
    if not secrets:
        raise ValueError("at least one secret is required")
    return tuple(secret.encode() for secret in secrets)
