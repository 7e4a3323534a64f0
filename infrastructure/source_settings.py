"""``[sources.<name>]``: one partner's settings, validated and resolved.

Every error is a :class:`ConfigError` whose message starts with the dotted key
at fault (``sources.acme.secrets[1]: ...``) and never contains a secret value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.namespaces import NAMESPACE_NAME
from infrastructure.config_fields import (
    ConfigError,
    as_table,
    check_keys,
    read_bool,
    read_positive_int,
    read_string,
)

KNOWN_SCHEMES = (
    "standard-webhooks",
    "stripe",
    "github",
    "shopify",
    "hmac-sha256",
    "none",
)
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAPPING_NAME = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")
HMAC_KEYS = (
    "signature_header",
    "signature_encoding",
    "signature_prefix",
    "timestamp_header",
)
SOURCE_KEYS = (
    "scheme",
    "secrets",
    "tolerance_seconds",
    "mapping",
    "max_body_bytes",
    "retention_days",
    "key",
    "key_fallback",
    "store_headers",
    "clock_skew_seconds",
    "allow_unsigned",
    "namespace",
    *HMAC_KEYS,
)
KEY_LOCATION = re.compile(r"^(header:[A-Za-z0-9_-]+|body:\$(\.[A-Za-z0-9_-]+)+)$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
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


@dataclass(frozen=True)
class SourceSettings:
    """One partner, ``[sources.<name>]``; ``secrets`` holds resolved values."""

    name: str
    scheme: str
    secrets: tuple[str, ...] = field(repr=False)
    tolerance_seconds: int = 300
    mapping: str = "standard"
    """The mapping's name, resolved: what the file names, else the scheme's
    default (``DEFAULT_MAPPINGS``). Settings built in code name theirs, or
    take ``standard``; only the file reader resolves per scheme."""
    mapping_is_default: bool = False
    """True when the file named no mapping and the scheme's default was taken."""
    max_body_bytes: int = 1_048_576
    retention_days: int = 30
    key: str | None = None
    """Where the idempotency key is: ``header:NAME`` or ``body:$.path``;
    None for the scheme's own (``webhook-id``, Stripe's ``id``, …)."""
    key_fallback: str = "none"
    """``body-hash``: a delivery without a key gets sha256(source, body)."""
    store_headers: tuple[str, ...] = ()
    """Headers (lower case) a delivery record keeps besides the scheme's own,
    e.g. one a custom mapping reads, so that a replay sees it too."""
    clock_skew_seconds: int = 86_400
    """How far past this server's clock a partner's event time may be; an
    event later than that is refused (400)."""
    signature_header: str | None = None
    signature_encoding: str = "hex"
    signature_prefix: str = ""
    timestamp_header: str | None = None
    """hmac-sha256 only: when set, the signed content is ``{timestamp}.{body}``."""
    allow_unsigned: bool = False
    """none only: an unsigned source on PostgreSQL needs it set (settings.py)."""
    namespace: str | None = None
    """The namespace the file names (shared with other sources); None: the
    source's own, ``namespace_of``."""

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
    where = f"sources.{name}"
    if not SOURCE_NAME.match(name):
        raise ConfigError(f"{where}: source names match {SOURCE_NAME.pattern}")
    fields = as_table(value, where)
    check_keys(fields, where, SOURCE_KEYS)
    if "scheme" not in fields:
        raise ConfigError(f"{where}.scheme: required ({', '.join(KNOWN_SCHEMES)})")
    scheme = read_string(fields, where, "scheme", "")
    if scheme not in KNOWN_SCHEMES:
        known = ", ".join(KNOWN_SCHEMES)
        raise ConfigError(f"{where}.scheme: unknown scheme {scheme!r} ({known})")
    mapping = _mapping(fields, where, scheme)
    return SourceSettings(
        **_key_options(fields, where),
        **_hmac_options(fields, where, scheme),
        name=name,
        scheme=scheme,
        secrets=_secrets(fields.get("secrets", []), f"{where}.secrets", scheme, environ)
        if resolve_secrets
        else (),
        tolerance_seconds=_tolerance(fields, where),
        mapping=mapping or DEFAULT_MAPPINGS[scheme],
        mapping_is_default=mapping is None,
        max_body_bytes=read_positive_int(fields, where, "max_body_bytes", 1_048_576),
        retention_days=read_positive_int(fields, where, "retention_days", 30),
        store_headers=_store_headers(fields, where),
        clock_skew_seconds=read_positive_int(
            fields, where, "clock_skew_seconds", 86_400
        ),
        allow_unsigned=_allow_unsigned(fields, where, scheme),
        namespace=_namespace(fields, where),
    )


def _namespace(fields: Mapping[str, object], where: str) -> str | None:
    if "namespace" not in fields:
        return None
    namespace = read_string(fields, where, "namespace", "")
    if not NAMESPACE_NAME.match(namespace):
        raise ConfigError(
            f"{where}.namespace: namespace names match {NAMESPACE_NAME.pattern}"
        )
    return namespace


def _mapping(fields: Mapping[str, object], where: str, scheme: str) -> str | None:
    """The mapping the table names; None when it names none and the scheme
    has a default. Never a silent fallback to another scheme's mapping: a
    Shopify body read as a ``standard`` envelope is a 400 to every delivery."""
    if "mapping" not in fields:
        if scheme in DEFAULT_MAPPINGS:
            return None
        raise ConfigError(
            f"{where}.mapping: required for scheme {scheme}: a mapping must be "
            'named (a built-in one, e.g. "standard", or "package.module:function")'
        )
    mapping = read_string(fields, where, "mapping", "")
    if not MAPPING_NAME.match(mapping):
        raise ConfigError(
            f"{where}.mapping: expected a built-in name or 'package.module:function'"
        )
    return mapping


MAX_STORE_HEADERS = 20


def _store_headers(fields: Mapping[str, object], where: str) -> tuple[str, ...]:
    value = fields.get("store_headers", [])
    if not isinstance(value, list) or len(value) > MAX_STORE_HEADERS:
        raise ConfigError(
            f"{where}.store_headers: expected a list of at most "
            f"{MAX_STORE_HEADERS} header names"
        )
    names = []
    for index, name in enumerate(value):
        if not isinstance(name, str) or not HEADER_NAME.match(name):
            raise ConfigError(f"{where}.store_headers[{index}]: expected a header name")
        if name.lower() in UNSTORABLE_HEADERS:
            raise ConfigError(
                f"{where}.store_headers[{index}]: {name} carries credentials; "
                "it is never stored"
            )
        names.append(name.lower())
    return tuple(names)


def _tolerance(fields: Mapping[str, object], where: str) -> int:
    seconds = read_positive_int(fields, where, "tolerance_seconds", 300)
    if seconds > MAX_TOLERANCE_SECONDS:
        raise ConfigError(
            f"{where}.tolerance_seconds: at most {MAX_TOLERANCE_SECONDS} "
            "(a signed request is replayable for that long; partners use 300)"
        )
    return seconds


def _allow_unsigned(fields: Mapping[str, object], where: str, scheme: str) -> bool:
    if "allow_unsigned" in fields and scheme != "none":
        raise ConfigError(f"{where}.allow_unsigned: only for scheme none")
    return read_bool(fields, where, "allow_unsigned", False)


def _key_options(fields: Mapping[str, object], where: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "key" in fields:
        key = read_string(fields, where, "key", "")
        if not KEY_LOCATION.match(key):
            raise ConfigError(
                f'{where}.key: expected "header:NAME" or "body:$.path.to.key"'
            )
        options["key"] = key
    fallback = read_string(fields, where, "key_fallback", "none")
    if fallback not in ("none", "body-hash"):
        raise ConfigError(f'{where}.key_fallback: expected "none" or "body-hash"')
    options["key_fallback"] = fallback
    return options


def _hmac_options(
    fields: Mapping[str, object], where: str, scheme: str
) -> dict[str, Any]:
    given = [key for key in HMAC_KEYS if key in fields]
    if scheme != "hmac-sha256":
        if given:
            raise ConfigError(f"{where}.{given[0]}: only for scheme hmac-sha256")
        return {}
    if "signature_header" not in fields:
        raise ConfigError(f"{where}.signature_header: required for hmac-sha256")
    options: dict[str, Any] = {}
    for header in ("signature_header", "timestamp_header"):
        if header in fields:
            value = read_string(fields, where, header, "")
            if not HEADER_NAME.match(value):
                raise ConfigError(f"{where}.{header}: expected a header name")
            options[header] = value.lower()
    encoding = read_string(fields, where, "signature_encoding", "hex")
    if encoding not in ("hex", "base64"):
        raise ConfigError(f'{where}.signature_encoding: expected "hex" or "base64"')
    options["signature_encoding"] = encoding
    prefix = fields.get("signature_prefix", "")
    if not isinstance(prefix, str):
        raise ConfigError(f"{where}.signature_prefix: expected a string")
    options["signature_prefix"] = prefix
    return options


def _secrets(
    value: object, where: str, scheme: str, environ: Mapping[str, str]
) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f'{where}: expected a list of "env:NAME" strings')
    if not value and scheme != "none":
        raise ConfigError(f"{where}: at least one secret is required for {scheme}")
    resolved = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        if not isinstance(item, str):
            raise ConfigError(f'{at}: expected a string "env:NAME"')
        if not item.startswith("env:"):
            raise ConfigError(
                f"{at}: secrets are never written in the file; use env:NAME"
            )
        variable = item.removeprefix("env:")
        if not variable:
            raise ConfigError(f"{at}: env: needs a variable name")
        if variable not in environ:
            raise ConfigError(f"{at}: environment variable {variable} is not set")
        if not environ[variable]:
            raise ConfigError(f"{at}: environment variable {variable} is empty")
        if (
            scheme != "none"
            and _key_bytes(environ[variable], scheme, at) < MIN_SECRET_BYTES
        ):
            decoded = " (base64-decoded after whsec_)" if scheme == WHSEC else ""
            raise ConfigError(
                f"{at}: the secret in environment variable {variable} is too "
                f"short: its key must be at least {MIN_SECRET_BYTES} bytes{decoded}"
            )
        resolved.append(environ[variable])
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
