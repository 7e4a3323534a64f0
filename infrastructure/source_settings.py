"""``[sources.<name>]``: one partner's settings, checked and resolved.

The table is decoded as a ``SourceTable`` (source_table.py); what follows is
what no single key's type says: rules per scheme, headers never stored, the
mapping a scheme defaults to, and the secrets, read from the environment (an
error names the variable, never its value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from infrastructure.config_fields import ConfigError, decode, from_env
from infrastructure.source_table import KNOWN_SCHEMES, HmacOptions, SourceTable

__all__ = ["DEFAULT_MAPPINGS", "KNOWN_SCHEMES", "SourceSettings", "read_source"]

SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
UNSTORABLE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
WHSEC = "standard-webhooks"
"""The scheme whose secret is ``whsec_`` and the base64 of the key."""
MIN_SECRET_BYTES = 16
"""The shortest HMAC key accepted, 128 bits: an HMAC is no stronger than its
key, and a short one can be guessed offline from a single captured request.
Partners' own are longer (Standard Webhooks and Svix: 24 bytes; Stripe:
``whsec_`` and 32 characters)."""
DEFAULT_MAPPINGS: Mapping[str, str] = {
    "standard-webhooks": "standard",
    "stripe": "stripe",
    "shopify": "shopify",
    "github": "github",
}
"""The mapping a source of each scheme gets when its table names none. A
scheme not listed has none: its sources must name one (``hmac-sha256`` and
``none``, since what such a partner sends is anyone's guess)."""
MAX_TOLERANCE_SECONDS = 3600
"""The widest replay window accepted for a signed timestamp, past or future
(Stripe and Standard Webhooks use 300 s): beyond an hour a captured request
stays valid for longer than any partner's clock needs."""


class SourceSettings(SourceTable, frozen=True, kw_only=True):
    """One partner, ``[sources.<name>]``, resolved: ``secrets`` holds the
    secrets' values (never in its repr), ``mapping`` a name."""

    name: str
    mapping: str = "standard"
    """The mapping's name, resolved: what the file names, else the scheme's
    default (``DEFAULT_MAPPINGS``). Settings built in code name theirs, or
    take ``standard``; only the file reader resolves per scheme."""
    mapping_is_default: bool = False
    """True when the file named no mapping and the scheme's default was taken."""

    def __repr__(self) -> str:
        shown = msgspec.structs.asdict(self) | {"secrets": len(self.secrets)}
        return f"SourceSettings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def namespace_of(self, pinned: Mapping[str, str]) -> tuple[str, str]:
        """The namespace this source writes into, and why: the one its table
        names, else the one the store pinned to it (``pinned``, by source:
        it wrote before there were namespaces), else its own name."""
        if self.namespace is not None:
            return self.namespace, "named"
        if self.name in pinned:
            return pinned[self.name], "pinned: it wrote before namespaces"
        return self.name, "its name"


def read_source(
    name: str, value: object, environ: Mapping[str, str], resolve_secrets: bool
) -> SourceSettings:
    """``[sources.NAME]``: decoded, checked across keys, secrets resolved."""
    where = f"sources.{name}"
    if not SOURCE_NAME.match(name):
        raise ConfigError(f"{where}: source names match {SOURCE_NAME.pattern}")
    table = decode(value, SourceTable, where)
    given = set(value) if isinstance(value, dict) else set()
    scheme = table.scheme
    if scheme not in KNOWN_SCHEMES:
        known = ", ".join(KNOWN_SCHEMES)
        raise ConfigError(f"{where}.scheme: unknown scheme {scheme!r} ({known})")
    _check_scheme_options(table, given, where)
    _check_mapping(table, where)
    _check_bounds(table, where)
    secrets = (
        _secrets(table.secrets, f"{where}.secrets", scheme, environ)
        if resolve_secrets
        else ()
    )
    return SourceSettings(
        **msgspec.structs.asdict(table)
        | {
            "name": name,
            "secrets": secrets,
            "mapping": table.mapping or DEFAULT_MAPPINGS[scheme],
            "mapping_is_default": table.mapping is None,
            "signature_header": _lower(table.signature_header),
            "timestamp_header": _lower(table.timestamp_header),
            "store_headers": tuple(header.lower() for header in table.store_headers),
        }
    )


def _lower(header: str | None) -> str | None:
    return None if header is None else header.lower()


def _check_scheme_options(table: SourceTable, given: set[str], where: str) -> None:
    """Keys only one scheme takes, and what that scheme requires."""
    if "allow_unsigned" in given and table.scheme != "none":
        raise ConfigError(f"{where}.allow_unsigned: only for scheme none")
    hmac_keys = [f.name for f in msgspec.structs.fields(HmacOptions)]
    if table.scheme != "hmac-sha256":
        misplaced = [key for key in hmac_keys if key in given]
        if misplaced:
            raise ConfigError(f"{where}.{misplaced[0]}: only for scheme hmac-sha256")
    elif table.signature_header is None:
        raise ConfigError(f"{where}.signature_header: required for hmac-sha256")


def _check_mapping(table: SourceTable, where: str) -> None:
    """Never a silent fallback to another scheme's mapping: a Shopify body
    read as a ``standard`` envelope is a 400 to every delivery."""
    if table.mapping is None and table.scheme not in DEFAULT_MAPPINGS:
        raise ConfigError(
            f"{where}.mapping: required for scheme {table.scheme}: a mapping must "
            'be named (a built-in one, e.g. "standard", or "package.module:function")'
        )


def _check_bounds(table: SourceTable, where: str) -> None:
    """What a value's type cannot say: an upper bound whose reason is worth
    telling, and headers never stored."""
    if table.tolerance_seconds > MAX_TOLERANCE_SECONDS:
        raise ConfigError(
            f"{where}.tolerance_seconds: at most {MAX_TOLERANCE_SECONDS} "
            "(a signed request is replayable for that long; partners use 300)"
        )
    for index, header in enumerate(table.store_headers):
        if header.lower() in UNSTORABLE_HEADERS:
            raise ConfigError(
                f"{where}.store_headers[{index}]: {header} carries credentials; "
                "it is never stored"
            )


def _secrets(
    value: tuple[str, ...], where: str, scheme: str, environ: Mapping[str, str]
) -> tuple[str, ...]:
    if not value and scheme != "none":
        raise ConfigError(f"{where}: at least one secret is required for {scheme}")
    resolved = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        secret = from_env(item, at, environ)
        variable = item.removeprefix("env:")
        if scheme != "none" and _key_bytes(secret, scheme, at) < MIN_SECRET_BYTES:
            decoded = " (base64-decoded after whsec_)" if scheme == WHSEC else ""
            raise ConfigError(
                f"{at}: the secret in environment variable {variable} is too "
                f"short: its key must be at least {MIN_SECRET_BYTES} bytes{decoded}"
            )
        resolved.append(secret)
    return tuple(resolved)


def _key_bytes(secret: str, scheme: str, at: str) -> int:
    """The length of the HMAC key a secret gives: for Standard Webhooks the
    bytes of the base64 after ``whsec_``; for the other schemes the secret's
    UTF-8 bytes, which they use as the key as it is written."""
    if scheme != WHSEC:
        return len(secret.encode())
    # Imported here: the schemes package imports the settings at its top.
    from infrastructure.schemes.standard_webhooks import InvalidSecret, decode_secret

    try:
        return len(decode_secret(secret))
    except InvalidSecret as invalid:
        raise ConfigError(f"{at}: {invalid}") from None
