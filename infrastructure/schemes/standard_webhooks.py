"""The Standard Webhooks scheme (https://www.standardwebhooks.com), also Svix.

Headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (or the
same with the ``svix-`` prefix). The signature header is a space-separated list
of ``v1,<base64>`` entries, each an HMAC-SHA256 over
``"{id}.{timestamp}.".encode() + body``; other versions (``v1a``) are ignored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from infrastructure.schemes import Unauthorized
from infrastructure.schemes.signing import (
    check_signatures,
    check_timestamp,
    digest,
    header,
    header_bytes,
    header_text,
    required,
)

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

    key_is_signed = True
    stored_headers: tuple[str, ...] = (
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
    )

    def __init__(self, secrets: Sequence[str], tolerance_seconds: int) -> None:
        if not secrets:
            raise ValueError("standard-webhooks needs at least one secret")
        self._keys = tuple(
            decode_secret(secret, index) for index, secret in enumerate(secrets)
        )
        self._tolerance = tolerance_seconds

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
        """Raise :class:`Unauthorized` unless one v1 signature matches in time."""
        msg_id = required(headers, "webhook-id", "svix-id")
        timestamp = required(headers, "webhook-timestamp", "svix-timestamp")
        signature = required(headers, "webhook-signature", "svix-signature")
        check_timestamp(timestamp, now, self._tolerance)
        candidates = _v1_signatures(signature)
        if not candidates:
            raise Unauthorized("no v1 signature")
        signed = signed_content(header_bytes(msg_id), timestamp, body)
        check_signatures(self._keys, signed, candidates)
        return signed

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """The ``webhook-id`` (or ``svix-id``): the same across retries, and
        exactly the id that ``verify`` checked the signature of (as text:
        its bytes read as UTF-8)."""
        msg_id = header(headers, "webhook-id", "svix-id")
        return None if msg_id is None else header_text(msg_id)


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
        except (binascii.Error, ValueError):  # ValueError: not ASCII
            raise Unauthorized("malformed signature header") from None
    return signatures


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` a sender would send (for demos and benchmarks;
    the tests sign with the reference library instead)."""
    signed = signed_content(msg_id.encode(), str(timestamp), body)
    mac = digest(decode_secret(secret), signed)
    return "v1," + base64.b64encode(mac).decode()


def signed_content(msg_id: bytes, timestamp: str, body: bytes) -> bytes:
    """``{id}.{timestamp}.{body}``, where the id is the bytes it was sent as."""
    return msg_id + f".{timestamp}.".encode() + body
