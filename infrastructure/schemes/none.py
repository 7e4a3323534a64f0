"""``none``: no signature at all. Development only: ``idemsync serve`` warns
loudly for every such source. The default key is the ``Idempotency-Key``
header."""

from __future__ import annotations

from collections.abc import Mapping

from infrastructure.schemes.signing import key_header


class Unsigned:
    """Accepts every request (development only)."""

    key_is_signed = False
    stored_headers: tuple[str, ...] = ("idempotency-key",)

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
        return body

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return key_header(headers, "idempotency-key")
