"""Where a delivery's idempotency key is: the scheme's own place, or one the
source configures (``key = "header:X-Request-Id"`` or ``key = "body:$.id"``),
and, only when configured (``key_fallback = "body-hash"``), a hash of the
source and the raw body for partners that send no key at all.

Where the key is not covered by the signature, a delivery also has a
*fingerprint*: a digest of the bytes its signature covers, which a re-sent
capture keeps whatever key it is given."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

from infrastructure.schemes.signing import key_header

MAX_KEY_LENGTH = 500


def body_value(body: bytes, path: Sequence[str]) -> str | None:
    """The string or integer at ``path`` in the JSON body, else None."""
    try:
        value: object = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None


class KeyedScheme(Protocol):
    key_is_signed: bool

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None: ...


class KeyFinder:
    """Finds the key of a delivery to one source."""

    def __init__(
        self,
        source: str,
        scheme: KeyedScheme,
        location: str | None = None,
        fallback: str = "none",
    ) -> None:
        self.source = source
        self.scheme = scheme
        self.header: str | None = None
        self.path: tuple[str, ...] | None = None
        if location is not None:
            kind, _, where = location.partition(":")
            if kind == "header":
                self.header = where.lower()
            else:
                self.path = tuple(where.removeprefix("$.").split("."))
        self.hash_body = fallback == "body-hash"
        self.key_is_signed = self.path is not None or (
            self.header is None and scheme.key_is_signed
        )
        """The key is inside the signed bytes (a body path, or the scheme's
        own signed key): then it alone identifies a delivery."""

    def fingerprint(self, signed: bytes) -> str | None:
        """The delivery's second identity when its key is not signed: a
        digest of the ``signed`` bytes (the source is the other half of the
        identity). A capture re-sent under a fresh key has the same one."""
        if self.key_is_signed:
            return None
        return "sha256:" + hashlib.sha256(signed).hexdigest()

    def __call__(self, headers: Mapping[str, str], body: bytes) -> str | None:
        if self.header is not None:
            key = key_header(headers, self.header)
        elif self.path is not None:
            key = body_value(body, self.path)
        else:
            key = self.scheme.key(headers, body)
        if key is None and self.hash_body:
            digest = hashlib.sha256(self.source.encode() + b"\0" + body).hexdigest()
            key = f"sha256:{digest}"
        if key is not None and (len(key) > MAX_KEY_LENGTH or "\x00" in key):
            return None  # unusable (PostgreSQL text cannot hold NUL): no key
        return key
