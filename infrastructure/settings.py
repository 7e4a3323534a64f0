"""Configuration: one TOML file, secrets from the environment (specification §2, §3).

Every error is a :class:`ConfigError` whose message starts with the dotted key
at fault (``sources.acme.secrets[1]: ...``) and never contains a secret value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from infrastructure.access import Token, read_tokens
from infrastructure.config_fields import (
    ConfigError,
    as_table,
    check_keys,
    read_bool,
    read_positive_int,
    read_positive_number,
    read_string,
)
from infrastructure.source_settings import (
    DEFAULT_MAPPINGS,
    KNOWN_SCHEMES,
    SourceSettings,
    read_source,
)

__all__ = [
    "DEFAULT_MAPPINGS",
    "KNOWN_SCHEMES",
    "ConfigError",
    "Settings",
    "SourceSettings",
    "config_path",
    "load_settings",
]

DEFAULT_DATABASE_URL = "sqlite:///var/idemsync.db"
EXAMPLE_CONFIG = Path(__file__).resolve().parent / "idemsync.example.toml"
"""The shipped example (package data): the configuration when there is no
``idemsync.toml`` here and no ``IDEMSYNC_CONFIG``."""
TOP_LEVEL_TABLES = ("database", "server", "projections", "sources", "tokens")


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one idemsync process."""

    database_url: str
    sources: Mapping[str, SourceSettings]
    config_path: Path
    lock_timeout_seconds: float = 5.0
    pool_size: int = 10
    retry_after_seconds: int = 2
    body_timeout_seconds: float = 10.0
    """A webhook body must have arrived whole within this, else 408 ([server])."""
    metrics_require_token: bool = False
    """``/metrics`` needs a token of the role reader ([server])."""
    commit_wait_seconds: float = 5.0
    """How long a decided delivery may wait to be committed before it is
    answered 503 ([server]; see infrastructure/group_commit.py)."""
    max_waiting_commits: int = 2000
    """Deliveries waiting to commit, per process, beyond which new ones are
    answered 503 at once ([server])."""
    max_in_flight: int = 512
    """Webhook requests being handled at once, per process, beyond which new
    ones are answered 503 at once ([server])."""
    max_header_bytes: int = 16384
    """A request whose header names and values add up to more bytes is
    refused with 431 before any work ([server]; web/limits.py)."""
    max_headers: int = 100
    """A request with more headers is refused with 431 ([server])."""
    header_timeout_seconds: float = 10.0
    """A connection must deliver a request line and headers within this,
    counted from its opening or from its previous answer, else it is closed
    (408 if it had begun a request; [server]; web/transport.py)."""
    tokens: Mapping[str, Token] = field(default_factory=lambda: MappingProxyType({}))
    """Bearer tokens by name, ``[tokens.NAME]`` (hashes only; specification §8)."""
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
    if "admin_enabled" in server:
        raise ConfigError(
            "server.admin_enabled: no longer used: /admin is always served, to "
            "tokens with the admin role ([tokens.NAME], `idemsync tokens add`)"
        )
    check_keys(
        server,
        "server",
        (
            "retry_after_seconds",
            "metrics_require_token",
            "commit_wait_seconds",
            "max_waiting_commits",
            "max_in_flight",
            "body_timeout_seconds",
            "max_header_bytes",
            "max_headers",
            "header_timeout_seconds",
        ),
    )
    projections = as_table(document.get("projections", {}), "projections")
    check_keys(projections, "projections", ("in_serve", "batch_size", "poll_seconds"))
    tables = as_table(document.get("sources", {}), "sources")
    file_url = read_string(database, "database", "url", DEFAULT_DATABASE_URL)
    database_url = env.get("IDEMSYNC_DATABASE_URL") or file_url
    sources = {
        name: read_source(name, value, env, resolve_secrets)
        for name, value in tables.items()
    }
    _refuse_unsigned_on_postgres(sources, database_url)
    return Settings(
        database_url=database_url,
        sources=MappingProxyType(sources),
        config_path=path,
        tokens=read_tokens(document.get("tokens", {})),
        lock_timeout_seconds=read_positive_number(
            database, "database", "lock_timeout_seconds", 5.0
        ),
        pool_size=read_positive_int(database, "database", "pool_size", 10),
        retry_after_seconds=read_positive_int(
            server, "server", "retry_after_seconds", 2
        ),
        body_timeout_seconds=read_positive_number(
            server, "server", "body_timeout_seconds", 10.0
        ),
        metrics_require_token=read_bool(
            server, "server", "metrics_require_token", False
        ),
        commit_wait_seconds=read_positive_number(
            server, "server", "commit_wait_seconds", 5.0
        ),
        max_waiting_commits=read_positive_int(
            server, "server", "max_waiting_commits", 2000
        ),
        max_in_flight=read_positive_int(server, "server", "max_in_flight", 512),
        max_header_bytes=read_positive_int(server, "server", "max_header_bytes", 16384),
        max_headers=read_positive_int(server, "server", "max_headers", 100),
        header_timeout_seconds=read_positive_number(
            server, "server", "header_timeout_seconds", 10.0
        ),
        projections_in_serve=read_bool(projections, "projections", "in_serve", True),
        projection_batch_size=read_positive_int(
            projections, "projections", "batch_size", 500
        ),
        projection_poll_seconds=read_positive_number(
            projections, "projections", "poll_seconds", 0.5
        ),
    )


def _refuse_unsigned_on_postgres(
    sources: Mapping[str, SourceSettings], database_url: str
) -> None:
    """A ``none`` source lets anyone who reaches it write; on SQLite (one
    machine, development) it is allowed with a loud warning at start, on
    PostgreSQL only when its table says ``allow_unsigned = true``. Checked
    here, where the URL is final (``IDEMSYNC_DATABASE_URL`` wins)."""
    if urlsplit(database_url).scheme not in ("postgresql", "postgres"):
        return
    for source in sources.values():
        if source.scheme == "none" and not source.allow_unsigned:
            raise ConfigError(
                f"sources.{source.name}.allow_unsigned: scheme none accepts "
                "unsigned webhooks from anyone; on PostgreSQL that needs "
                "allow_unsigned = true in the source's table"
            )


def _read(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
