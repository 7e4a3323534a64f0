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
from infrastructure.config_fields import ConfigError, decode, from_env
from infrastructure.config_tables import (
    ConfigFile,
    DatabaseTable,
    ProjectionsTable,
    ServerTable,
)
from infrastructure.privacy.keys import MasterKey
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

EXAMPLE_CONFIG = Path(__file__).resolve().parent / "idemsync.example.toml"
"""The shipped example (package data): the configuration when there is no
``idemsync.toml`` here and no ``IDEMSYNC_CONFIG``."""


@dataclass(frozen=True)
class Settings:
    """The whole configuration of one idemsync process: the file's tables as
    decoded (config_tables.py, where every key's default is), and what is
    resolved from them and from the environment."""

    database_url: str
    """``IDEMSYNC_DATABASE_URL``, else ``[database] url``."""
    sources: Mapping[str, SourceSettings]
    config_path: Path
    database: DatabaseTable = field(default_factory=DatabaseTable)
    server: ServerTable = field(default_factory=ServerTable)
    projections: ProjectionsTable = field(default_factory=ProjectionsTable)
    tokens: Mapping[str, Token] = field(default_factory=lambda: MappingProxyType({}))
    """Bearer tokens by name, ``[tokens.NAME]`` (hashes only; specification §8)."""
    master_key: MasterKey | None = None
    """``[privacy] master_key`` resolved: personal fields are sealed with it
    (infrastructure/privacy); None: stored in clear."""


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
    server = document.get("server")
    if isinstance(server, dict) and "admin_enabled" in server:
        raise ConfigError(
            "server.admin_enabled: no longer used: /admin is always served, to "
            "tokens with the admin role ([tokens.NAME], `idemsync tokens add`)"
        )
    file = decode(document, ConfigFile, "")
    database_url = env.get("IDEMSYNC_DATABASE_URL") or file.database.url
    sources = {
        name: read_source(name, value, env, resolve_secrets)
        for name, value in file.sources.items()
    }
    _refuse_unsigned_on_postgres(sources, database_url)
    return Settings(
        database_url=database_url,
        sources=MappingProxyType(sources),
        config_path=path,
        database=file.database,
        server=file.server,
        projections=file.projections,
        tokens=read_tokens(file.tokens),
        master_key=_master_key(file.privacy.master_key, env),
    )


def _master_key(reference: str | None, env: Mapping[str, str]) -> MasterKey | None:
    """The master key ``[privacy] master_key`` names; resolved for every
    command, as each one that reads events must open personal fields."""
    if reference is None:
        return None
    at = "privacy.master_key"
    text = from_env(reference, at, env, what="keys")
    try:
        return MasterKey.from_text(text)
    except ValueError as error:
        variable = reference.removeprefix("env:")
        raise ConfigError(f"{at}: environment variable {variable}: {error}") from None


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
