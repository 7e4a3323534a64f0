"""``none``: no signature at all. Development only: ``idemsync serve`` warns
loudly for every such source. The default key is the ``Idempotency-Key``
header."""

from __future__ import annotations

from collections.abc import Mapping


class Unsigned:
    """Accepts every request (development only)."""

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        return None

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return headers.get("idempotency-key") or None
