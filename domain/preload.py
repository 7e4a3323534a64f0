"""The aggregates of a batch of deliveries, read from the store together.

A batch addresses many aggregates; reading each with the library's
repository is two statements apiece (its latest snapshot, then its events).
``Preloaded.read`` reads the latest snapshots of all of them in one
statement and their events after those in another, when the recorders can
(``ReadsMany``: PostgreSQL and SQLite), else one by one (in memory).

Each ``get`` projects a fresh aggregate from the events read, so a decision
that is dropped (deferred to the next batch, or lost to a concurrent writer)
leaves nothing behind for the next. What was read may be stale by the time
the batch commits: the expected-version check of the commit catches it, as
for a single read.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from eventsourcing.application import Application, project_aggregate
from eventsourcing.domain import Aggregate, DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent

Events = tuple[DomainEventProtocol[uuid.UUID], ...]


@runtime_checkable
class ReadsMany(Protocol):
    """A recorder that reads several aggregates' records in one statement."""

    def select_latest(self, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, StoredEvent]:
        """The latest record of each of ``ids`` that has one."""
        ...

    def select_after(
        self, after: Mapping[uuid.UUID, int]
    ) -> dict[uuid.UUID, list[StoredEvent]]:
        """The records of each id above the version given for it."""
        ...


@runtime_checkable
class MapsMany(Protocol):
    """A mapper that turns several stored events into events at once (the
    sealing mapper reads the keys they need in one statement)."""

    def to_domain_events(
        self, stored: Sequence[StoredEvent]
    ) -> list[DomainEventProtocol[uuid.UUID]]: ...


def to_events(
    mapper: Mapper[uuid.UUID], stored: Sequence[StoredEvent]
) -> list[DomainEventProtocol[uuid.UUID]]:
    """``stored`` as events, in order: all at once when ``mapper`` can
    (``MapsMany``), else one by one."""
    if isinstance(mapper, MapsMany):
        return mapper.to_domain_events(stored)
    return [mapper.to_domain_event(one) for one in stored]


class Preloaded:
    """What a batch's aggregates were when read (see the module)."""

    def __init__(self, events: Mapping[uuid.UUID, Events]) -> None:
        self.events = events

    @classmethod
    def read(cls, app: Application[uuid.UUID], ids: Collection[uuid.UUID]) -> Preloaded:
        """The snapshot and later events of each of ``ids`` (none: never stored)."""
        if not ids:
            return cls({})
        snapshots = app.snapshots
        recorder = app.events.recorder
        if not isinstance(recorder, ReadsMany) or (
            snapshots is not None and not isinstance(snapshots.recorder, ReadsMany)
        ):
            return cls({i: _one_by_one(app, i) for i in ids})
        latest: dict[uuid.UUID, StoredEvent] = {}
        if snapshots is not None:
            assert isinstance(snapshots.recorder, ReadsMany)
            latest = snapshots.recorder.select_latest(ids)
        after = {i: latest[i].originator_version if i in latest else 0 for i in ids}
        stored = recorder.select_after(after)
        order = list(ids)
        records = [
            record
            for i in order
            for record in ([latest[i]] if i in latest else []) + stored.get(i, [])
        ]
        decoded = iter(to_events(app.events.mapper, records))
        events: dict[uuid.UUID, Events] = {}
        for i in order:
            count = (i in latest) + len(stored.get(i, ()))
            events[i] = tuple(next(decoded) for _ in range(count))
        return cls(events)

    def __contains__(self, aggregate_id: object) -> bool:
        return aggregate_id in self.events

    def get(self, aggregate_id: uuid.UUID) -> Aggregate | None:
        """A fresh copy of the aggregate as read; None: it was never stored."""
        events: Sequence[Any] = self.events[aggregate_id]
        if not events:
            return None
        aggregate = project_aggregate(None, events)
        assert isinstance(aggregate, Aggregate)
        return aggregate


def _one_by_one(app: Application[uuid.UUID], aggregate_id: uuid.UUID) -> Events:
    """The library's two reads (snapshot, events after it) of one aggregate."""
    first: list[DomainEventProtocol[uuid.UUID]] = []
    if app.snapshots is not None:
        first = list(app.snapshots.get(aggregate_id, desc=True, limit=1))
    gt = first[0].originator_version if first else None
    return (*first, *app.events.get(aggregate_id, gt=gt))
