"""The delivery pipeline: admit, recall, decide and commit, without HTTP.

::

    admit   source, size, signature, key, fingerprint     CPU only
    recall  a retry whose first answer this process read   memory only
    decide  first answer in the store, else decode, let    SyncService.decide_batch
            the objects decide, commit                     (the server: GroupCommit's
                                                           batch; else a batch of one)

The web route (``answer``), the CLI's replay (``Source.decode`` and
``SyncService.replay``) and the tests (``receive``) all go through these
stages. A delivery is a duplicate when its key was recorded before, or, for
sources whose key the signature does not cover, when its fingerprint (a
digest of the signed bytes) was: a captured request re-sent under a fresh
key is answered as its first copy was. What is refused raises a
``infrastructure.refusals.Refusal``; ``web`` alone turns it into a status.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
import psycopg
from eventsourcing.persistence import PersistenceError

from domain.application import Mapped, Pending, SyncService, TooMuchContention
from domain.delivery import Answer, Delivery, FirstAnswer, Outcome
from infrastructure.group_commit import GroupCommit, Overloaded
from infrastructure.privacy.erasure import Eraser
from infrastructure.recent_answers import RecentAnswers
from infrastructure.refusals import (
    Busy,
    MissingKey,
    PayloadTooLarge,
    StoreUnavailable,
    UnknownSource,
    Unsigned,
)
from infrastructure.schemes import Unauthorized
from infrastructure.settings import Settings
from infrastructure.sightings import Sightings
from infrastructure.sources import Source


@contextmanager
def refusals() -> Iterator[None]:
    """A store that fails or is overloaded, as the refusal the partner sees
    (``Busy`` or ``StoreUnavailable``: both ask for a retry)."""
    try:
        yield
    except TooMuchContention as busy:
        raise Busy("too many concurrent changes; retry") from busy
    except Overloaded as busy:
        raise Busy("too many deliveries waiting; retry", detail=str(busy)) from busy
    except (PersistenceError, sqlite3.Error, psycopg.Error) as down:
        raise StoreUnavailable(
            "the store is unavailable; retry", detail=str(down)
        ) from down


@dataclass(frozen=True)
class Admitted:
    """A delivery whose signature holds: its source, idempotency key and,
    where the key is not signed, its fingerprint (``Delivery.fingerprint``)."""

    source: Source
    key: str
    fingerprint: str | None = None


class Pipeline:
    """Turns one raw request into an answer, or a ``Refusal``.

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
        pinned: Mapping[str, str] | None = None,
        eraser: Eraser | None = None,
    ) -> None:
        """``pinned``: the store's namespace pins
        (``Database.pinned_namespaces``; a store written since namespaces
        has none). ``eraser``: carries out the erasures deliveries ask for
        (none without it)."""
        self.eraser = eraser
        self.service = service
        self.clock = clock
        self.sightings = sightings
        self.recent = RecentAnswers() if recent is None else recent
        self.sources = {
            name: Source.build(source, pinned)
            for name, source in settings.sources.items()
        }

    def source(self, name: str) -> Source:
        try:
            return self.sources[name]
        except KeyError:
            raise UnknownSource(f"no source named {name!r}") from None

    def receive(self, name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Every stage, in this thread (the CLI, the tests)."""
        admitted = self.admit(self.source(name), headers, body)
        answer = self.recall(admitted)
        if answer is None:
            answer = self.decide(admitted, headers, body)
        self.erase(admitted, self.erasures_asked(admitted, headers, body))
        return answer

    def erasures_asked(
        self, admitted: Admitted, headers: Mapping[str, str], body: bytes
    ) -> list[str]:
        """The customers a delivery asks to erase (Shopify's
        ``customers/redact``): CPU only, none for most deliveries."""
        source = admitted.source
        if source.erasures is None or self.eraser is None:
            return []
        return source.erasures(body, headers)

    def erase(self, admitted: Admitted, customer_ids: Sequence[str]) -> None:
        """Carry out the erasures a recorded delivery asks for, before it is
        answered: after a crash, the partner's retry (a duplicate) carries
        them out again, and an erasure is safe to repeat."""
        source = admitted.source
        for customer_id in customer_ids:
            assert self.eraser is not None
            with refusals():
                self.eraser.erase(
                    source.namespace,
                    customer_id,
                    by=f"source:{source.name}",
                    reason=f"erasure requested by delivery {admitted.key}",
                )

    async def answer(
        self, source: Source, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        """Every stage, for the web route: admit and recall on the event
        loop (no I/O); then, with the server's group commit, wait on the
        event loop for the delivery's batch, else decide in a worker thread."""
        admitted = self.admit(source, headers, body)
        answer = self.recall(admitted)
        if answer is None:
            answer = await self._decided(admitted, headers, body)
        asked = self.erasures_asked(admitted, headers, body)
        if asked:
            await anyio.to_thread.run_sync(self.erase, admitted, asked)
        return answer

    async def _decided(
        self, admitted: Admitted, headers: Mapping[str, str], body: bytes
    ) -> Answer:
        group = self.service.committer
        if not isinstance(group, GroupCommit):
            return await anyio.to_thread.run_sync(self.decide, admitted, headers, body)
        delivery, decode = self._delivery(admitted, headers, body)
        with refusals():
            answer = await group.answer(Pending(delivery, decode))
        return self._answered(admitted, answer, delivery.received_at)

    def admit(
        self, source: Source, headers: Mapping[str, str], body: bytes
    ) -> Admitted:
        """The idempotency key and fingerprint of a delivery whose signature
        holds (CPU only, no I/O); a ``Refusal`` otherwise."""
        if len(body) > source.settings.max_body_bytes:
            raise PayloadTooLarge("body over max_body_bytes")
        try:
            signed = source.scheme.verify(headers, body, self.clock())
        except Unauthorized as refusal:
            raise Unsigned(
                "signature missing or invalid", detail=refusal.reason
            ) from refusal
        key = source.key(headers, body)
        if not key:
            raise MissingKey("the delivery has no idempotency key")
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
        answer if it has one (by key, or by fingerprint), else decoded,
        decided and recorded now. A store that fails or is overloaded is a
        ``Busy`` or ``StoreUnavailable``."""
        delivery, decode = self._delivery(admitted, headers, body)
        with refusals():
            answer = self.service.receive(delivery, decode)
        return self._answered(admitted, answer, delivery.received_at)

    @staticmethod
    def _delivery(
        admitted: Admitted, headers: Mapping[str, str], body: bytes
    ) -> tuple[Delivery, Callable[[], Mapped]]:
        """The delivery as recorded, and what decodes its commands (called
        only when it has no first answer)."""
        source = admitted.source
        received_at = datetime.now(UTC)
        delivery = Delivery(
            source=source.name,
            key=admitted.key,
            received_at=received_at,
            payload=body,
            headers=source.stored_headers(headers),
            fingerprint=admitted.fingerprint,
            namespace=source.namespace,
        )
        return delivery, lambda: source.decode(body, headers, received_at)

    def _answered(self, admitted: Admitted, answer: Answer, at: datetime) -> Answer:
        """``answer``, a duplicate's first answer kept in memory for the
        next retry and its sighting (received ``at``) counted."""
        if answer.outcome is Outcome.DUPLICATE:
            if answer.first is not None and answer.first_received_at is not None:
                first = FirstAnswer(answer.first, answer.first_received_at)
                self.recent.put(admitted.source.name, admitted.key, first)
            self._sighted(answer, at)
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
