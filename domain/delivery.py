"""Deliveries and their answers: what the partner sent and what we said back.

A delivery is counted once per ``(source, key)``. Its first answer is recorded
in the same transaction as the events it caused, and every retry gets that
answer back under ``first``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from domain.namespaces import DEFAULT_NAMESPACE


class Outcome(StrEnum):
    """The outcomes of specification §4, strongest first for combining."""

    APPLIED = "applied"
    PARKED = "parked"
    REJECTED = "rejected"
    STALE = "stale"
    IGNORED = "ignored"
    DUPLICATE = "duplicate"


STRENGTH = {outcome: rank for rank, outcome in enumerate(Outcome)}
FIRST_OUTCOMES = tuple(
    outcome.value for outcome in Outcome if outcome is not Outcome.DUPLICATE
)
"""A delivery's first answer (what its record keeps) is never ``duplicate``."""


@dataclass(frozen=True)
class Delivery:
    """One verified request from a partner, as received.

    ``fingerprint`` identifies its content independently of its key, for
    partners whose key anyone may change (it is outside their signature): a
    delivery whose fingerprint was recorded before, from the same source,
    is a duplicate of that one whatever key it carries. None when the key
    alone identifies the delivery. ``namespace``: where its commands find
    their objects (its source's, ``domain.namespaces``)."""

    source: str
    key: str
    received_at: datetime
    payload: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    fingerprint: str | None = None
    namespace: str = DEFAULT_NAMESPACE


@dataclass(frozen=True)
class ObjectRef:
    """The object a delivery addressed and its version after the decision."""

    type: str
    id: str
    version: int
    namespace: str = DEFAULT_NAMESPACE

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "namespace": self.namespace,
            "version": self.version,
        }


@dataclass(frozen=True)
class FirstAnswer:
    """What a retry is answered from: the first answer, and when the first
    copy was received."""

    answer: Mapping[str, Any]
    received_at: datetime


@dataclass(frozen=True)
class Answer:
    """The answer to a delivery: the JSON body of the response."""

    outcome: Outcome
    source: str
    key: str
    objects: tuple[ObjectRef, ...] = ()
    reason: str | None = None
    first: Mapping[str, Any] | None = None
    first_received_at: datetime | None = None
    """For a duplicate: when the first copy was received (not in the body;
    the partner's retry delay is the time since)."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "outcome": self.outcome.value,
            "source": self.source,
            "key": self.key,
        }
        if self.objects:
            body["aggregate"] = self.objects[0].to_json()
        if len(self.objects) > 1:
            body["aggregates"] = [ref.to_json() for ref in self.objects]
        if self.reason is not None:
            body["reason"] = self.reason
        if self.first is not None:
            body["first"] = dict(self.first)
        return body

    @staticmethod
    def duplicate(source: str, key: str, first: FirstAnswer) -> Answer:
        return Answer(
            Outcome.DUPLICATE,
            source,
            key,
            first=first.answer,
            first_received_at=first.received_at,
        )

    @staticmethod
    def combine(
        source: str,
        key: str,
        results: Sequence[tuple[Outcome, str | None]],
        objects: tuple[ObjectRef, ...],
    ) -> Answer:
        """One answer for a delivery of several commands: the strongest
        outcome, with the reason that goes with it."""
        outcome, reason = min(results, key=lambda result: STRENGTH[result[0]])
        return Answer(outcome, source, key, objects, reason)


@dataclass(frozen=True)
class Resolution:
    """What became of a parked delivery once its object was created."""

    source: str
    key: str
    outcome: Outcome
    reason: str | None = None

    @staticmethod
    def per_delivery(resolutions: Sequence[Resolution]) -> list[Resolution]:
        """One resolution per delivery, in the order they first appear: the
        strongest outcome of its commands, with its reason (as
        ``Answer.combine`` does for a delivery's first answer)."""
        strongest: dict[tuple[str, str], Resolution] = {}
        for resolution in resolutions:
            where = (resolution.source, resolution.key)
            known = strongest.get(where)
            if known is None or STRENGTH[resolution.outcome] < STRENGTH[known.outcome]:
                strongest[where] = resolution
        return list(strongest.values())


@dataclass(frozen=True)
class DeliveryRecord:
    """What the delivery log stores, in the same transaction as the events.
    ``redacted``: the delivery is about a data subject whose personal data
    was erased: only the digests of its payload and headers are kept."""

    delivery: Delivery
    answer: Answer
    redacted: bool = False


@dataclass(frozen=True)
class Ask:
    """What finds a delivery's first answer: its source and key, and its
    fingerprint when its key is not signed."""

    source: str
    key: str
    fingerprint: str | None = None


class DeliveryLog(Protocol):
    """Looks up the first answer to a delivery (implemented by the recorders):
    the one recorded under ``key``, else, given a ``fingerprint``, the one
    recorded with that fingerprint."""

    def find_answer(
        self, source: str, key: str, fingerprint: str | None = None
    ) -> FirstAnswer | None: ...

    def find_answers(self, asks: Sequence[Ask]) -> list[FirstAnswer | None]:
        """``find_answer`` of each of ``asks``, in one round trip."""
        ...
