"""GitHub: ``X-Hub-Signature-256: sha256=<hex>`` over the raw body.

GitHub signs no timestamp, so there is no replay window to check: a replayed
request carries an old ``X-GitHub-Delivery`` and is answered ``duplicate``.
The key is ``X-GitHub-Delivery``, which a redelivery reuses.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence

from infrastructure.schemes import Unauthorized
from infrastructure.schemes.signing import (
    check_signatures,
    key_header,
    required,
    utf8_keys,
)


class GitHub:
    """Verifies GitHub's SHA-256 signature against every configured secret."""

    key_is_signed = False
    stored_headers: tuple[str, ...] = (
        "x-github-delivery",
        "x-github-event",
        "x-hub-signature-256",
        "x-github-hook-id",
        "x-github-hook-installation-target-id",
        "x-github-hook-installation-target-type",
    )

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keys = utf8_keys(secrets)

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
        value = required(headers, "x-hub-signature-256")
        algorithm, equals, encoded = value.partition("=")
        if algorithm != "sha256" or not equals:
            raise Unauthorized("malformed signature header")
        try:
            signature = binascii.unhexlify(encoded)
        except (binascii.Error, ValueError):
            raise Unauthorized("malformed signature header") from None
        check_signatures(self._keys, body, [signature])
        return body

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return key_header(headers, "x-github-delivery")
