"""What every projection is: tables, topics, and ``process(event)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from eventsourcing.utils import get_topic
from sqlalchemy import Connection, MetaData, Table
from sqlalchemy.dialects import postgresql, sqlite

Tables = Mapping[str, Table]


class Projection(ABC):
    """A read model. ``define`` describes its tables (with a name suffix for
    shadow copies), ``process`` applies one domain event to them. It must be
    deterministic: a rebuild from the log gives the same rows, row for row."""

    name: ClassVar[str]
    event_classes: ClassVar[tuple[type, ...]]

    @property
    def topics(self) -> list[str]:
        return [get_topic(cls) for cls in self.event_classes]

    @abstractmethod
    def define(self, metadata: MetaData, suffix: str = "") -> dict[str, Table]:
        """The tables by their base name; each table (and index) name ends
        with ``suffix`` so that a shadow copy can live beside the live one."""

    @abstractmethod
    def process(self, conn: Connection, tables: Tables, event: Any) -> None:
        """Apply ``event`` to ``tables`` on ``conn`` (inside the batch's
        transaction)."""


def insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ``on_conflict_do_update`` on both backends."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def recorded_at(event: Any) -> datetime:
    """When the event was recorded (eventsourcing's timestamp), in UTC."""
    moment: datetime = event.timestamp
    return moment.astimezone(UTC)
