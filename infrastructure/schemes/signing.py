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


def header_bytes(value: str) -> bytes:
    """The bytes a header value arrived as. ASGI servers hand header values
    to Starlette as bytes, which it decodes as latin-1: a sender that signed
    a non-ASCII ``webhook-id`` signed its UTF-8 bytes, which ``encode("utf-8")``
    of that text would not give back. (A value that latin-1 cannot hold came
    from elsewhere, e.g. a dict in a test or the CLI, and is UTF-8.)"""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def header_text(value: str) -> str:
    """A header value as the sender wrote it: its bytes read as UTF-8 where
    they are UTF-8 (an idempotency key ``msg_é`` stays ``msg_é``), else as
    they came."""
    try:
        return header_bytes(value).decode()
    except UnicodeDecodeError:
        return value


def header(headers: Mapping[str, str], *names: str) -> str | None:
    """The first of ``names`` that is present and not blank, trimmed as
    HTTP trims; else None."""
    for name in names:
        value = (headers.get(name) or "").strip(HTTP_SPACE)
        if value:
            return value
    return None


def key_header(headers: Mapping[str, str], name: str) -> str | None:
    """An idempotency key read from header ``name``, as the sender wrote it
    (``header_text``); None when absent or empty."""
    value = headers.get(name)
    return header_text(value) if value else None


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
