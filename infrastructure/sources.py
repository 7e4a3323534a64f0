"""A configured partner: its scheme, key finder and mapping built once, what
a delivery record keeps of its headers, and how its bodies are decoded.

``Source.decode`` is the one way a body becomes commands, for a live
delivery and for a replay alike: the source's mapping, then the refusals
every mapping gets (a NUL the store cannot hold, an event time too far
ahead of our clock), as an ``UnreadablePayload`` naming the field and the
mapping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.commands import Command, Ignored
from domain.namespaces import DEFAULT_NAMESPACE
from infrastructure.mappings import (
    ErasureRequests,
    InvalidPayload,
    PayloadMapping,
    load_erasures,
    load_mapping,
)
from infrastructure.refusals import UnreadablePayload
from infrastructure.schemes import Scheme, build_scheme
from infrastructure.schemes.keys import KeyFinder
from infrastructure.settings import ConfigError, SourceSettings

STORED_HEADERS = ("content-type", "user-agent")
"""Headers kept with every delivery record, besides its scheme's own and
the source's ``store_headers``."""
MAX_STORED_HEADER_CHARS = 2048
"""A longer value of a kept header is stored cut to this, marked as cut."""


@dataclass(frozen=True)
class Source:
    """A configured partner with its scheme and mapping built once."""

    settings: SourceSettings
    scheme: Scheme
    mapping: PayloadMapping
    key: KeyFinder
    kept_headers: tuple[str, ...] = ()
    """The headers a delivery record keeps (``stored_headers``)."""
    namespace: str = DEFAULT_NAMESPACE
    """Where its deliveries' commands find their objects
    (``SourceSettings.namespace_of``)."""
    erasures: ErasureRequests | None = None
    """Finds the customers a delivery asks to erase (``load_erasures``)."""

    @property
    def name(self) -> str:
        return self.settings.name

    def stored_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The part of a request's ``headers`` its record keeps, bounded: what
        an auditor reads and a re-verification or a replay needs, never a
        cookie or a credential, and nothing a sender could pad it with."""
        kept = {}
        for name in self.kept_headers:
            value = headers.get(name)
            if value is None:
                continue
            if len(value) > MAX_STORED_HEADER_CHARS:
                cut = len(value) - MAX_STORED_HEADER_CHARS
                value = value[:MAX_STORED_HEADER_CHARS] + f"...[{cut} more cut]"
            kept[name] = value
        return kept

    def decode(
        self, body: bytes, headers: Mapping[str, str], now: datetime
    ) -> Sequence[Command] | Ignored:
        """The commands of ``body`` by this source's mapping, or the
        ``UnreadablePayload`` that says which field and which mapping."""
        try:
            mapped = self.mapping(body, headers)
            if not isinstance(mapped, Ignored):
                refuse_nul(mapped)
                refuse_future(mapped, now, self.settings.clock_skew_seconds)
        except InvalidPayload as invalid:
            mapping = self.settings.mapping
            raise UnreadablePayload(
                f"{invalid.message} (mapping {mapping!r})",
                path=invalid.path,
                mapping=mapping,
            ) from invalid
        return mapped

    @staticmethod
    def build(
        settings: SourceSettings, pinned: Mapping[str, str] | None = None
    ) -> Source:
        """Build the scheme and load the mapping (a ConfigError or an
        ImportError here is a configuration error, found at start);
        ``pinned``: the store's namespace pins (``namespace_of``)."""
        scheme = build_scheme(settings)
        key = KeyFinder(settings.name, scheme, settings.key, settings.key_fallback)
        try:
            mapping = load_mapping(settings.mapping)
        except (ImportError, AttributeError, ValueError) as error:
            raise ConfigError(
                f"sources.{settings.name}.mapping: cannot load "
                f"{settings.mapping!r}: {error}"
            ) from error
        namespace, _ = settings.namespace_of(pinned or {})
        return Source(
            settings,
            scheme,
            mapping,
            key,
            _kept_headers(settings, scheme),
            namespace,
            load_erasures(settings.mapping),
        )


def _kept_headers(settings: SourceSettings, scheme: Scheme) -> tuple[str, ...]:
    """``STORED_HEADERS``, the scheme's own, the one the key is read from and
    the source's ``store_headers``."""
    location = settings.key or ""
    own = location.removeprefix("header:").lower()
    return tuple(
        dict.fromkeys(
            (
                *STORED_HEADERS,
                *scheme.stored_headers,
                *((own,) if location.startswith("header:") else ()),
                *settings.store_headers,
            )
        )
    )


def refuse_nul(commands: Sequence[Command]) -> None:
    """PostgreSQL text cannot hold NUL: refuse it as bad input (400) rather
    than failing in the store (a 503 the partner would retry for ever), for
    every mapping, built in or not."""
    for index, command in enumerate(commands):
        for name, value in dataclasses.asdict(command).items():
            if _has_nul(value):
                raise InvalidPayload(
                    f"NUL characters are not accepted ({command.type} {name})",
                    f"$[{index}].{name}",
                )


def refuse_future(
    commands: Sequence[Command], now: datetime, skew_seconds: int
) -> None:
    """A partner's event time more than ``skew_seconds`` past our clock is
    bad input (400): an object positioned by it would refuse every later
    event until that time (a sequence, the partner's own counter, is never
    compared with our clock)."""
    latest = now + timedelta(seconds=skew_seconds)
    for index, command in enumerate(commands):
        if command.occurred_at > latest:
            raise InvalidPayload(
                f"{command.type} happened at {command.occurred_at.isoformat()}, "
                f"more than {skew_seconds} s after this server's clock "
                "(clock_skew_seconds)",
                f"$[{index}].occurred_at",
            )


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return chr(0) in value
    if isinstance(value, Mapping):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False
