"""Generic HMAC-SHA256 for partners with a scheme of their own.

The signature header, its encoding (hex or base64) and an optional prefix
(``sha256=``) are configured per source. With ``timestamp_header`` set, the
signed content is ``"{timestamp}.{raw body}"`` and the timestamp must be within
``tolerance_seconds``; without it, the raw body alone. The default key is the
``Idempotency-Key`` header.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from infrastructure.schemes import Unauthorized
from infrastructure.schemes.signing import (
    check_signatures,
    check_timestamp,
    key_header,
    required,
    utf8_keys,
)
from infrastructure.settings import SourceSettings


class HmacSha256:
    """Verifies a configurable HMAC-SHA256 header against every secret."""

    key_is_signed = False

    def __init__(self, source: SourceSettings) -> None:
        if source.signature_header is None:
            raise ValueError("hmac-sha256 needs signature_header")
        self._keys = utf8_keys(source.secrets)
        self._header = source.signature_header
        self._prefix = source.signature_prefix
        self._base64 = source.signature_encoding == "base64"
        self._timestamp_header = source.timestamp_header
        self._tolerance = source.tolerance_seconds
        self.stored_headers = tuple(
            name
            for name in (self._header, self._timestamp_header, "idempotency-key")
            if name is not None
        )

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
        value = required(headers, self._header)
        if not value.startswith(self._prefix):
            raise Unauthorized("malformed signature header")
        signature = self._decode(value.removeprefix(self._prefix))
        signed = body
        if self._timestamp_header is not None:
            timestamp = required(headers, self._timestamp_header)
            check_timestamp(timestamp, now, self._tolerance)
            signed = f"{timestamp}.".encode() + body
        check_signatures(self._keys, signed, [signature])
        return signed

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return key_header(headers, "idempotency-key")

    def _decode(self, encoded: str) -> bytes:
        try:
            if self._base64:
                return base64.b64decode(encoded, validate=True)
            return binascii.unhexlify(encoded)
        except (binascii.Error, ValueError):
            raise Unauthorized("malformed signature header") from None
