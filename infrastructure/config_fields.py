"""Typed readers for TOML values; every error names the dotted key at fault."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class ConfigError(Exception):
    """Invalid configuration; the message names the source and key, e.g.
    'sources.acme.secrets[1]: environment variable ACME_SECRET_PREVIOUS is not set'.
    """


def as_table(value: object, where: str) -> dict[str, Any]:
    """Return ``value`` if it is a TOML table."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a table")
    return value


def check_keys(table: Mapping[str, object], where: str, known: tuple[str, ...]) -> None:
    """Refuse a key of ``table`` that is not in ``known`` (a typo, usually)."""
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(known)})")


def read_string(table: Mapping[str, object], where: str, key: str, default: str) -> str:
    """Return ``table[key]`` (or ``default``), a non-empty string."""
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: expected a non-empty string")
    return value


def read_bool(table: Mapping[str, object], where: str, key: str, default: bool) -> bool:
    """Return ``table[key]`` (or ``default``), true or false."""
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: expected true or false")
    return value


def read_positive_int(
    table: Mapping[str, object], where: str, key: str, default: int
) -> int:
    """Return ``table[key]`` (or ``default``), an integer above zero."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}.{key}: expected a positive integer")
    return value


def read_positive_number(
    table: Mapping[str, object], where: str, key: str, default: float
) -> float:
    """Return ``table[key]`` (or ``default``), a finite number above zero."""
    value = table.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{where}.{key}: expected a positive number")
    return float(value)
