"""What every projection is: tables, topics, and ``process_batch(events)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from eventsourcing.utils import get_topic
from sqlalchemy import Connection, MetaData, Table

Tables = Mapping[str, Table]


class Projection(ABC):
    """A read model. ``define`` describes its tables (with a name suffix for
    shadow copies), ``process_batch`` applies a batch of domain events to
    them. It must be deterministic: a rebuild from the log gives the same
    rows, row for row.

    A projection overrides ``process_batch`` (the runner and rebuilds call
    only that) or ``process`` (one event; the default ``process_batch`` calls
    it for each event). Either way, the rows a batch leaves must not depend
    on where the batches start and end: a rebuild replays in batches of
    thousands, the live runner in batches of ten to a few hundred, and
    both must end in the same rows (specification §5.5)."""

    name: ClassVar[str]
    event_classes: ClassVar[tuple[type, ...]]

    @property
    def topics(self) -> list[str]:
        return [get_topic(cls) for cls in self.event_classes]

    @abstractmethod
    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        """The tables by their base name; each table (and index) name ends
        with ``suffix`` so that a shadow copy can live beside the live one."""

    def process_batch(
        self, conn: Connection, tables: Tables, events: Sequence[Any]
    ) -> None:
        """Apply ``events`` (in log order) to ``tables`` on ``conn``, inside
        the batch's transaction: exactly as applying them one at a time."""
        for event in events:
            self.process(conn, tables, event)

    def process(self, conn: Connection, tables: Tables, event: Any) -> None:
        """Apply one event: a batch of one."""
        if type(self).process_batch is Projection.process_batch:
            raise NotImplementedError(
                f"{type(self).__name__} overrides neither process nor process_batch"
            )
        self.process_batch(conn, tables, (event,))


def recorded_at(event: Any) -> datetime:
    """When the event was recorded (eventsourcing's timestamp), in UTC."""
    moment: datetime = event.timestamp
    return moment.astimezone(UTC)


def object_key(event: Any) -> tuple[str, str]:
    """The read-model key of the partner's object an event belongs to: its id
    and namespace (``domain.namespaces``; the id first, so that the primary
    key also finds an id whose namespace is not given)."""
    return (event.object_id, event.namespace)
