"""The delivery pipeline without HTTP: verify, key, duplicate, decode, decide.

A delivery is a duplicate when its key was recorded before, or, for sources
whose key the signature does not cover, when its fingerprint (a digest of the
signed bytes) was: a captured request re-sent under a fresh key is answered
as its first copy was.

The web route and the CLI both call ``Intake.receive`` with a source name,
the request headers and the raw body bytes, so that replaying a stored
payload goes through exactly the code a live delivery went through.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from eventsourcing.persistence import PersistenceError

from domain.application import SyncService, TooMuchContention
from domain.commands import Command, Ignored
from domain.delivery import Answer, Delivery, Outcome
from domain.namespaces import DEFAULT_NAMESPACE
from infrastructure.group_commit import Overloaded
from infrastructure.mappings import InvalidPayload, PayloadMapping, load_mapping
from infrastructure.recent_answers import RecentAnswers
from infrastructure.schemes import Scheme, Unauthorized, build_scheme
from infrastructure.schemes.keys import KeyFinder
from infrastructure.settings import ConfigError, Settings, SourceSettings
from infrastructure.sightings import Sightings

STORED_HEADERS = ("content-type", "user-agent")
"""Headers kept with every delivery record, besides its scheme's own and
the source's ``store_headers``."""
MAX_STORED_HEADER_CHARS = 2048
"""A longer value of a kept header is stored cut to this, marked as cut."""


class Refused(Exception):
    """A delivery answered with a 4xx or 5xx: nothing of it was stored.

    ``error`` and ``message`` go to the partner; ``detail`` only to the log.
    An ``invalid_payload`` names the field (``path``) and the source's
    mapping (``mapping``): the one that could not read the body, so that its
    author (or the user who chose it) knows where to look.
    """

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        path: str | None = None,
        mapping: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.path = path
        self.mapping = mapping
        self.detail = detail or message

    def to_json(self) -> dict[str, str]:
        body = {"error": self.error, "message": self.message}
        if self.path is not None:
            body["path"] = self.path
        if self.mapping is not None:
            body["mapping"] = self.mapping
        return body


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
            settings, scheme, mapping, key, _kept_headers(settings, scheme), namespace
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


@dataclass(frozen=True)
class Admitted:
    """A delivery whose signature holds: its source, idempotency key and,
    where the key is not signed, its fingerprint (``Delivery.fingerprint``)."""

    source: Source
    key: str
    fingerprint: str | None = None


class Intake:
    """Turns one raw request into an answer, or a ``Refused``.

    ``receive`` is ``admit`` (signature and key), ``recall`` (a retry whose
    first answer this process has read already: no I/O) and ``decide`` (the
    store: look up, decode, decide, record). The web route calls the first
    two on the event loop and ``decide`` in a worker thread.

    Each duplicate answer is counted in ``sightings`` (written later, by its
    flush: the duplicate path itself writes nothing); without it, not at all.
    """

    def __init__(
        self,
        settings: Settings,
        service: SyncService,
        clock: Callable[[], float] = time.time,
        sightings: Sightings | None = None,
        recent: RecentAnswers | None = None,
    ) -> None:
        self.service = service
        self.clock = clock
        self.sightings = sightings
        self.recent = RecentAnswers() if recent is None else recent
        pinned = service.deliveries.pinned_namespaces()
        self.sources = {
            name: Source.build(source, pinned)
            for name, source in settings.sources.items()
        }

    def source(self, name: str) -> Source:
        try:
            return self.sources[name]
        except KeyError:
            raise Refused(404, "unknown_source", f"no source named {name!r}") from None

    def receive(self, name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        admitted = self.admit(name, headers, body)
        recalled = self.recall(admitted)
        if recalled is not None:
            return recalled
        return self.decide(admitted, headers, body)

    def admit(self, name: str, headers: Mapping[str, str], body: bytes) -> Admitted:
        """The source, idempotency key and fingerprint of a delivery whose
        signature holds (CPU only, no I/O); ``Refused`` otherwise."""
        source = self.source(name)
        if len(body) > source.settings.max_body_bytes:
            raise Refused(413, "payload_too_large", "body over max_body_bytes")
        try:
            signed = source.scheme.verify(headers, body, self.clock())
        except Unauthorized as refusal:
            raise Refused(
                401,
                "unauthorized",
                "signature missing or invalid",
                detail=refusal.reason,
            ) from refusal
        key = source.key(headers, body)
        if not key:
            raise Refused(400, "missing_key", "the delivery has no idempotency key")
        return Admitted(source, key, source.key.fingerprint(signed))

    def recall(self, admitted: Admitted) -> Answer | None:
        """The duplicate answer of an admitted delivery whose first answer
        this process has read before (no I/O); None: ``decide`` it."""
        name, key = admitted.source.name, admitted.key
        first = self.recent.get(name, key)
        if first is None:
            return None
        return self._sighted(Answer.duplicate(name, key, first), datetime.now(UTC))

    def decide(
        self, admitted: Admitted, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        """The answer of an admitted delivery from the store: its first
        answer if it has one (by key, or by fingerprint), else decided and
        recorded now. A store that fails or is overloaded is a ``Refused``
        503."""
        try:
            return self._answer(admitted, headers, body)
        except TooMuchContention as busy:
            raise Refused(
                503, "overloaded", "too many concurrent changes; retry"
            ) from busy
        except Overloaded as busy:
            raise Refused(
                503,
                "overloaded",
                "too many deliveries waiting; retry",
                detail=str(busy),
            ) from busy
        except (PersistenceError, sqlite3.Error, psycopg.Error) as down:
            raise Refused(
                503,
                "store_unavailable",
                "the store is unavailable; retry",
                detail=str(down),
            ) from down

    def _answer(
        self, admitted: Admitted, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        source, key = admitted.source, admitted.key
        received_at = datetime.now(UTC)
        first = self.service.first_answer(
            source.name, key, fingerprint=admitted.fingerprint
        )
        if first is not None:
            self.recent.put(source.name, key, first)
            return self._sighted(Answer.duplicate(source.name, key, first), received_at)
        try:
            mapped = source.mapping(body, headers)
            if not isinstance(mapped, Ignored):
                refuse_nul(mapped)
                refuse_future(mapped, received_at, source.settings.clock_skew_seconds)
        except InvalidPayload as invalid:
            mapping = source.settings.mapping
            raise Refused(
                400,
                "invalid_payload",
                f"{invalid.message} (mapping {mapping!r})",
                path=invalid.path,
                mapping=mapping,
            ) from invalid
        delivery = Delivery(
            source=source.name,
            key=key,
            received_at=received_at,
            payload=body,
            headers=source.stored_headers(headers),
            fingerprint=admitted.fingerprint,
            namespace=source.namespace,
        )
        answer = self.service.receive(delivery, mapped, looked_up=True)
        if answer.outcome is Outcome.DUPLICATE:
            self._sighted(answer, received_at)
        return answer

    def _sighted(self, duplicate: Answer, at: datetime) -> Answer:
        """Count ``duplicate`` on the delivery it repeats: the one its first
        answer names (a capture re-sent under a fresh key is an attempt of
        the first delivery, whose record holds the count)."""
        if self.sightings is not None:
            first = duplicate.first or {}
            key = str(first.get("key", duplicate.key))
            self.sightings.record(duplicate.source, key, at)
        return duplicate
