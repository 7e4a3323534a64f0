"""Query parameters of the read and audit APIs: parsed strictly, refused with
a 400 that names the parameter, never passed to SQL as anything but a bound
value."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_POSITION = 2**62
"""The largest event position or version a query may name."""


class BadParameter(Exception):
    """A query parameter the endpoint cannot use: answered 400."""


def text(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is not None and "\x00" in value:
        raise BadParameter(f"{name} must not contain a NUL character")
    return value


TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


MAX_REASON = 500
"""The longest ``reason`` an admin action takes."""


def reason(params: Mapping[str, str]) -> str:
    """The required ``reason`` of an admin action (kept in its event):
    1 to ``MAX_REASON`` characters besides surrounding spaces."""
    given = (text(params, "reason") or "").strip()
    if not 1 <= len(given) <= MAX_REASON:
        raise BadParameter(f"reason must be 1 to {MAX_REASON} characters")
    return given


def choice(params: Mapping[str, str], name: str, values: Sequence[str]) -> str | None:
    """One of ``values``, or None when absent."""
    given = text(params, name)
    if given is not None and given not in values:
        raise BadParameter(f"{name} must be one of {', '.join(values)}")
    return given


def flag(params: Mapping[str, str], name: str) -> bool:
    """A boolean: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``
    (any case); absent is false."""
    given = params.get(name)
    if given is None or given.lower() in FALSE:
        return False
    if given.lower() in TRUE:
        return True
    raise BadParameter(f"{name} must be 1 or 0 (true or false)")


def integer(
    params: Mapping[str, str], name: str, *, default: int | None, low: int, high: int
) -> int | None:
    """A decimal integer from ``low`` to ``high``, or ``default`` when absent."""
    given = params.get(name)
    if given is None:
        return default
    digits = given.isascii() and given.isdigit() and len(given) <= 19
    if not digits or not low <= int(given) <= high:
        raise BadParameter(f"{name} must be an integer from {low} to {high}")
    return int(given)


@dataclass(frozen=True)
class Bounds:
    """An integer parameter's range and default: what a view parses, and what
    ``web.openapi`` documents for it (stated once, here or by the view)."""

    low: int
    high: int
    default: int | None = None

    def read(self, params: Mapping[str, str], name: str) -> int | None:
        return integer(params, name, default=self.default, low=self.low, high=self.high)

    def limit(self, params: Mapping[str, str]) -> int:
        """``limit``, for a bounds with a default."""
        found = self.read(params, "limit")
        assert found is not None
        return found


def moment(params: Mapping[str, str], name: str) -> datetime | None:
    """An ISO 8601 time, in UTC; one without a zone is UTC."""
    given = params.get(name)
    if given is None:
        return None
    try:
        at = datetime.fromisoformat(given)
    except ValueError:
        raise BadParameter(
            f"{name} must be an ISO 8601 time, e.g. 2026-11-24T14:03:00Z"
        ) from None
    if at.tzinfo is None:
        return at.replace(tzinfo=UTC)
    try:
        return at.astimezone(UTC)
    except OverflowError:
        # Before year 1 or after 9999 in UTC: no time recorded is, so the
        # nearest time Python can hold answers the same.
        return (datetime.min if at.year == 1 else datetime.max).replace(tzinfo=UTC)


def encode_cursor(value: Any) -> str:
    """An opaque cursor holding ``value`` (keyset pagination)."""
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor(params: Mapping[str, str]) -> Any:
    """The value of the cursor this server gave, or None."""
    given = params.get("cursor")
    if not given:
        return None
    try:
        padded = given + "=" * (-len(given) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
        if "\x00" in raw or "\\u0000" in raw:
            raise ValueError(raw)
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # JSON errors: ValueError
        raise BadParameter("cursor is not one this server gave") from None
    return value
