"""The mapper that seals personal fields on their way to the store and opens
them on their way back (crypto-shredding, ``infrastructure.privacy.keys``).

The domain never sees a sealed value: its events hold the fields as the
partner sent them, and this mapper, between the application and the
recorder, replaces each personal field (``domain.personal``) of an object's
event or snapshot with ``enc:v1:...``, sealed with its data subject's key.
The stored bytes, which the audit ledger hashes, are the sealed ones: an
erasure destroys the key and changes no stored byte, so the hash chain
verifies before and after.

Read back, a sealed field opens with its subject's key; once the key was
erased it reads as ``ERASED``. Where the fields are in a stored object:

- ``changes`` of an object's ``Changed`` and ``Erased`` events;
- ``command`` (and its ``fields``) of a ``Parked`` event;
- ``state.values`` and each parked command of a snapshot.

A field already stored in clear (written before a master key was set) is
read as it is: encryption covers what is written once it is on.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import resolve_topic

from domain.application import AGGREGATES
from domain.personal import ERASED, PERSONAL
from infrastructure.privacy.keys import DoesNotOpen, is_sealed, open_field, seal_field
from infrastructure.privacy.store import SubjectErased, SubjectKeys, subject_name

Transform = Callable[[Mapping[str, Any], str], dict[str, Any]]
"""Seals (or opens) the personal ``fields`` of a mapping: a new mapping."""


class SealingMapper(Mapper[uuid.UUID]):
    """The library's mapper (same transcoder), sealing the personal fields
    of each data subject with its key in ``keys``."""

    def __init__(self, mapper: Mapper[uuid.UUID], keys: SubjectKeys) -> None:
        super().__init__(mapper.transcoder, mapper.compressor, mapper.cipher)
        self.keys = keys

    def to_stored_event(
        self, domain_event: DomainEventProtocol[uuid.UUID]
    ) -> StoredEvent:
        kind = _personal_kind(domain_event)
        if kind is None:
            return super().to_stored_event(domain_event)
        subject = subject_name(kind, domain_event.originator_id)
        sealed = copy.copy(domain_event)
        _rewrite(vars(sealed), PERSONAL[kind], self._sealer(subject))
        return super().to_stored_event(sealed)

    def to_domain_event(
        self, stored_event: StoredEvent
    ) -> DomainEventProtocol[uuid.UUID]:
        (domain_event,) = self.to_domain_events([stored_event])
        return domain_event

    def to_domain_events(
        self, stored: Sequence[StoredEvent]
    ) -> list[DomainEventProtocol[uuid.UUID]]:
        """``stored`` as events, each personal field opened; the keys they
        need read in one statement (``domain.preload.MapsMany``)."""
        decode = super().to_domain_event
        events = [decode(one) for one in stored]
        sealed: list[tuple[dict[str, Any], frozenset[str], str]] = []
        for event in events:
            kind = _personal_kind(event)
            if kind is not None and _holds_sealed(vars(event), PERSONAL[kind]):
                subject = subject_name(kind, event.originator_id)
                sealed.append((vars(event), PERSONAL[kind], subject))
        keys = self.keys.existing_keys({subject for _, _, subject in sealed})
        for state, fields, subject in sealed:
            _rewrite(state, fields, _opener(subject, keys.get(subject)))
        return events

    def _sealer(self, subject: str) -> Transform:
        """Seals with the subject's key, made on first use. A subject erased
        before gets no key: its fields are stored as ``ERASED`` (the domain
        refuses what a partner sends about an erased customer, so this only
        guards against a value outliving its erasure)."""
        key: list[bytes | None] = []

        def seal(values: Mapping[str, Any], field: str) -> dict[str, Any]:
            value = values[field]
            if value is None or is_sealed(value) or value == ERASED:
                return dict(values)
            if not key:
                try:
                    key.append(self.keys.key_for(subject))
                except SubjectErased:
                    key.append(None)
            data_key = key[0]
            text = json.dumps(value, separators=(",", ":"))
            sealed = (
                ERASED
                if data_key is None
                else seal_field(data_key, text, subject, field)
            )
            return {**values, field: sealed}

        return seal


def _opener(subject: str, key: bytes | None) -> Transform:
    """Opens with the subject's ``key``; ``ERASED`` where it does not open
    (no key: erased)."""

    def open_(values: Mapping[str, Any], field: str) -> dict[str, Any]:
        value = values[field]
        if not is_sealed(value):
            return dict(values)
        try:
            if key is None:
                raise DoesNotOpen(f"{subject} has no key")
            opened = json.loads(open_field(key, value, subject, field))
        except DoesNotOpen:
            opened = ERASED
        return {**values, field: opened}

    return open_


def _holds_sealed(state: dict[str, Any], fields: frozenset[str]) -> bool:
    """Whether an event's or snapshot's state holds a sealed field."""
    found: list[bool] = []

    def look(values: Mapping[str, Any], field: str) -> dict[str, Any]:
        found.append(is_sealed(values[field]))
        return dict(values)

    _rewrite(dict(state), fields, look)
    return any(found)


def _rewrite(
    state: dict[str, Any], fields: frozenset[str], transform: Transform
) -> None:
    """Apply ``transform`` to each personal field wherever an event or a
    snapshot of the object holds one (the module's docstring), replacing
    the containers, never changing them in place: a domain event's
    mappings are shared with the aggregate that triggered it."""

    def each(values: Mapping[str, Any]) -> dict[str, Any]:
        result = dict(values)
        for field in fields & values.keys():
            result = transform(result, field)
        return result

    def command(stated: Mapping[str, Any]) -> dict[str, Any]:
        result = each(stated)
        if isinstance(stated.get("fields"), Mapping):
            result["fields"] = each(stated["fields"])
        return result

    if isinstance(state.get("changes"), Mapping):
        state["changes"] = each(state["changes"])
    if isinstance(state.get("command"), Mapping):
        state["command"] = command(state["command"])
    snapshot = state.get("state")
    if isinstance(snapshot, Mapping) and isinstance(snapshot.get("values"), Mapping):
        state["state"] = {
            **snapshot,
            "values": each(snapshot["values"]),
            "parked": [
                {**p, "command": command(p["command"])}
                for p in snapshot.get("parked", ())
            ],
        }


def _personal_kind(domain_event: Any) -> str | None:
    """The type of the object whose event or snapshot this is, when that
    type has personal fields; else None."""
    topic = getattr(domain_event, "topic", None)
    if isinstance(topic, str):
        return _kind_of_aggregate(topic)
    return _kind_of_event(type(domain_event))


@cache
def _kind_of_aggregate(topic: str) -> str | None:
    aggregate = resolve_topic(topic)
    kind = getattr(aggregate, "kind", None)
    return kind if isinstance(kind, str) and PERSONAL.get(kind) else None


def _kind_of_event(event_class: type[Any]) -> str | None:
    for kind, aggregate in AGGREGATES.items():
        if PERSONAL.get(kind) and issubclass(event_class, aggregate.Event):
            return kind
    return None
