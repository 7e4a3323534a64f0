"""Configuration: one TOML file, secrets from the environment (contract §2, §3).

Every error is a :class:`ConfigError` whose message starts with the dotted key
at fault (``sources.acme.secrets[1]: ...``) and never contains a secret value.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from infrastructure.config_fields import (
    ConfigError,
    as_table,
    check_keys,
    read_bool,
    read_positive_int,
    read_positive_number,
    read_string,
)

__all__ = [
    "KNOWN_SCHEMES",
    "ConfigError",
    "Settings",
    "SourceSettings",
    "config_path",
    "load_settings",
]

KNOWN_SCHEMES = (
    "standard-webhooks",
    "stripe",
    "github",
    "shopify",
    "hmac-sha256",
    "none",
)
DEFAULT_DATABASE_URL = "sqlite:///var/idemsync.db"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "idemsync.example.toml"
TOP_LEVEL_TABLES = ("database", "server", "projections", "sources", "tokens")
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
    *HMAC_KEYS,
)
KEY_LOCATION = re.compile(r"^(header:[A-Za-z0-9_-]+|body:\$(\.[A-Za-z0-9_-]+)+)$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class SourceSettings:
    """One partner, ``[sources.<name>]``; ``secrets`` holds resolved values."""

    name: str
    scheme: str
    secrets: tuple[str, ...] = field(repr=False)
    tolerance_seconds: int = 300
    mapping: str = "standard"
    max_body_bytes: int = 1_048_576
    retention_days: int = 30
    key: str | None = None
    """Where the idempotency key is: ``header:NAME`` or ``body:$.path``;
    None for the scheme's own (``webhook-id``, Stripe's ``id``, …)."""
    key_fallback: str = "none"
    """``body-hash``: a delivery without a key gets sha256(source, body)."""
    signature_header: str | None = None
    signature_encoding: str = "hex"
    signature_prefix: str = ""
    timestamp_header: str | None = None
    """hmac-sha256 only: when set, the signed content is ``{timestamp}.{body}``."""


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one idemsync process."""

    database_url: str
    sources: Mapping[str, SourceSettings]
    config_path: Path
    lock_timeout_seconds: float = 5.0
    pool_size: int = 10
    retry_after_seconds: int = 2
    admin_enabled: bool = False
    """``/admin`` endpoints, until access roles exist ([server] admin_enabled)."""
    projections_in_serve: bool = True
    """Run the projection runner inside ``idemsync serve`` ([projections] in_serve)."""
    projection_batch_size: int = 500
    projection_poll_seconds: float = 0.5


def config_path(environ: Mapping[str, str]) -> Path:
    """``IDEMSYNC_CONFIG``, else ``./idemsync.toml`` if present, else the example."""
    explicit = environ.get("IDEMSYNC_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path.cwd() / "idemsync.toml"
    return local if local.is_file() else EXAMPLE_CONFIG


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    resolve_secrets: bool = True,
) -> Settings:
    """Read, validate and resolve the configuration file.

    ``resolve_secrets=False`` leaves every source's secrets empty, for commands
    that only need the database (``idemsync db upgrade``)."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    path = config_path(env) if path is None else path
    document = _read(path)
    for key, value in document.items():
        if key not in TOP_LEVEL_TABLES:
            allowed = ", ".join(TOP_LEVEL_TABLES)
            raise ConfigError(f"{key}: unknown table (allowed: {allowed})")
        as_table(value, key)
    database = as_table(document.get("database", {}), "database")
    check_keys(database, "database", ("url", "lock_timeout_seconds", "pool_size"))
    server = as_table(document.get("server", {}), "server")
    check_keys(server, "server", ("retry_after_seconds", "admin_enabled"))
    projections = as_table(document.get("projections", {}), "projections")
    check_keys(projections, "projections", ("in_serve", "batch_size", "poll_seconds"))
    sources = as_table(document.get("sources", {}), "sources")
    file_url = read_string(database, "database", "url", DEFAULT_DATABASE_URL)
    return Settings(
        database_url=env.get("IDEMSYNC_DATABASE_URL") or file_url,
        sources=MappingProxyType(
            {
                name: _source(name, value, env, resolve_secrets)
                for name, value in sources.items()
            }
        ),
        config_path=path,
        lock_timeout_seconds=read_positive_number(
            database, "database", "lock_timeout_seconds", 5.0
        ),
        pool_size=read_positive_int(database, "database", "pool_size", 10),
        retry_after_seconds=read_positive_int(
            server, "server", "retry_after_seconds", 2
        ),
        admin_enabled=read_bool(server, "server", "admin_enabled", False),
        projections_in_serve=read_bool(projections, "projections", "in_serve", True),
        projection_batch_size=read_positive_int(
            projections, "projections", "batch_size", 500
        ),
        projection_poll_seconds=read_positive_number(
            projections, "projections", "poll_seconds", 0.5
        ),
    )


def _read(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def _source(
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
    mapping = read_string(fields, where, "mapping", "standard")
    if not MAPPING_NAME.match(mapping):
        raise ConfigError(
            f"{where}.mapping: expected a built-in name or 'package.module:function'"
        )
    return SourceSettings(
        **_key_options(fields, where),
        **_hmac_options(fields, where, scheme),
        name=name,
        scheme=scheme,
        secrets=_secrets(fields.get("secrets", []), f"{where}.secrets", scheme, environ)
        if resolve_secrets
        else (),
        tolerance_seconds=read_positive_int(fields, where, "tolerance_seconds", 300),
        mapping=mapping,
        max_body_bytes=read_positive_int(fields, where, "max_body_bytes", 1_048_576),
        retention_days=read_positive_int(fields, where, "retention_days", 30),
    )


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
        resolved.append(environ[variable])
    return tuple(resolved)
