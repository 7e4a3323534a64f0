"""The Standard Webhooks scheme (https://www.standardwebhooks.com), also Svix.

Headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (or the
same with the ``svix-`` prefix). The signature header is a space-separated list
of ``v1,<base64>`` entries, each an HMAC-SHA256 over
``"{id}.{timestamp}.".encode() + body``; other versions (``v1a``) are ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from infrastructure.schemes import Unauthorized

SECRET_PREFIX = "whsec_"


class InvalidSecret(ValueError):
    """A configured secret is not ``whsec_<base64>`` (or bare base64)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def decode_secret(secret: str, index: int = 0) -> bytes:
    """Return the key bytes of ``whsec_<base64>`` or of a bare base64 string."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise InvalidSecret(index, "not valid base64 after whsec_") from None
    if not key:
        raise InvalidSecret(index, "empty secret")
    return key


class StandardWebhooks:
    """Verifies Standard Webhooks signatures against every configured secret."""

    def __init__(self, secrets: Sequence[str], tolerance_seconds: int) -> None:
        if not secrets:
            raise ValueError("standard-webhooks needs at least one secret")
        self._keys = tuple(
            decode_secret(secret, index) for index, secret in enumerate(secrets)
        )
        self._tolerance = tolerance_seconds

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Raise :class:`Unauthorized` unless one v1 signature matches in time."""
        msg_id = _header(headers, "id")
        timestamp = _header(headers, "timestamp")
        signature = _header(headers, "signature")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise Unauthorized("invalid timestamp")
        if abs(now - int(timestamp)) > self._tolerance:
            raise Unauthorized("timestamp outside tolerance")
        candidates = _v1_signatures(signature)
        if not candidates:
            raise Unauthorized("no v1 signature")
        for key in self._keys:
            expected = _digest(key, msg_id, timestamp, body)
            for candidate in candidates:
                if hmac.compare_digest(expected, candidate):
                    return
        raise Unauthorized("no matching signature")

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The ``webhook-id`` (or ``svix-id``): the same across retries."""
        return headers.get("webhook-id") or headers.get("svix-id") or None


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _header(headers: Mapping[str, str], suffix: str) -> str:
    value = headers.get(f"webhook-{suffix}") or headers.get(f"svix-{suffix}")
    if not value:
        raise Unauthorized(f"missing header webhook-{suffix}")
    return value.strip()


def _v1_signatures(header: str) -> list[bytes]:
    signatures = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if not comma or not version or not encoded:
            raise Unauthorized("malformed signature header")
        if version != "v1":
            continue
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            raise Unauthorized("malformed signature header") from None
    return signatures


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` a sender would send (for demos and benchmarks;
    the tests sign with the reference library instead)."""
    digest = _digest(decode_secret(secret), msg_id, str(timestamp), body)
    return "v1," + base64.b64encode(digest).decode()
