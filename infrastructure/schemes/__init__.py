"""Signature schemes: one small module per partner scheme, behind one interface.

A scheme authenticates a delivery over its raw body bytes and names its
idempotency key. ``headers`` is a case-insensitive mapping (starlette
``Headers``) or a dict with lower-case keys: schemes look up lower-case names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from infrastructure.settings import ConfigError, SourceSettings


class Unauthorized(Exception):
    """Signature missing or wrong, or timestamp outside tolerance; `reason` is for
    logs and metrics, never for the response.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Scheme(Protocol):
    """Verifies a delivery's signature and extracts its idempotency key.

    ``key_is_signed`` says whether the scheme's own key is covered by the
    signature (Standard Webhooks signs ``webhook-id``; Stripe's key is in the
    signed body). Where it is not (GitHub, Shopify, a header of the generic
    scheme), anyone holding a captured request can re-send it under a fresh
    key: the delivery's signed bytes then identify it too (see
    ``infrastructure.schemes.keys.KeyFinder.fingerprint``)."""

    key_is_signed: bool
    stored_headers: tuple[str, ...]
    """The headers (lower case) a delivery record keeps for this scheme:
    the signature, the key and what the partner says the delivery is."""

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> bytes:
        """Return the signed bytes if the delivery is authentic at time
        ``now``, else raise :class:`Unauthorized`."""
        ...

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Return the delivery's idempotency key, or None when it is absent."""
        ...


def build_scheme(source: SourceSettings) -> Scheme:
    """Construct the scheme configured for ``source``.

    A secret the scheme cannot use raises :class:`ConfigError` naming
    ``sources.<name>.secrets[<index>]``.
    """
    from infrastructure.schemes.github import GitHub
    from infrastructure.schemes.hmac_sha256 import HmacSha256
    from infrastructure.schemes.none import Unsigned
    from infrastructure.schemes.shopify import Shopify
    from infrastructure.schemes.standard_webhooks import InvalidSecret, StandardWebhooks
    from infrastructure.schemes.stripe import Stripe

    match source.scheme:
        case "standard-webhooks":
            try:
                return StandardWebhooks(source.secrets, source.tolerance_seconds)
            except InvalidSecret as exc:
                raise ConfigError(
                    f"sources.{source.name}.secrets[{exc.index}]: {exc}"
                ) from exc
        case "stripe":
            return Stripe(source.secrets, source.tolerance_seconds)
        case "github":
            return GitHub(source.secrets)
        case "shopify":
            return Shopify(source.secrets)
        case "hmac-sha256":
            return HmacSha256(source)
        case "none":
            return Unsigned()
    raise ConfigError(f"sources.{source.name}.scheme: unknown scheme {source.scheme!r}")
