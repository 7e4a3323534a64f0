"""Reading several aggregates' events (or latest snapshots) in one statement.

The library reads one aggregate per statement (``select_events``); a batch
of deliveries addresses many, so the group commit's writer reads them all
together (``domain.preload.Preloaded``): the latest snapshot of each in one
statement, then each one's events after it in another. These mixins add the
two reads to the library's recorders, one per backend.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Composed, Identifier


def _grouped(events: list[StoredEvent]) -> dict[UUID, list[StoredEvent]]:
    grouped: dict[UUID, list[StoredEvent]] = {}
    for event in events:
        grouped.setdefault(UUID(str(event.originator_id)), []).append(event)
    return grouped


class PostgresReadsMany(PostgresAggregateRecorder):
    """``select_latest`` and ``select_after`` on PostgreSQL."""

    def select_latest(self, ids: Collection[UUID]) -> dict[UUID, StoredEvent]:
        """The highest version of each of ``ids`` that has one."""
        statement = self._on_table(
            "SELECT DISTINCT ON (originator_id) * FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) "
            "ORDER BY originator_id, originator_version DESC"
        )
        found = self._rows(statement, [list(ids)])
        return {UUID(str(event.originator_id)): event for event in found}

    def select_after(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """The events of each id of ``after`` above its version there, in
        version order (ids with none are absent)."""
        statement = self._on_table(
            "SELECT t.* FROM unnest(%s::uuid[], %s::bigint[]) AS a(id, gt) "
            "JOIN {schema}.{table} t "
            "ON t.originator_id = a.id AND t.originator_version > a.gt "
            "ORDER BY t.originator_id, t.originator_version"
        )
        return _grouped(self._rows(statement, [list(after), list(after.values())]))

    def _on_table(self, text: str) -> Composed:
        """``text`` with this recorder's schema and table filled in."""
        return SQL(text).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
        )

    def _rows(self, statement: Any, params: list[Any]) -> list[StoredEvent]:
        if not params[0]:
            return []
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]


class SQLiteReadsMany(SQLiteAggregateRecorder):
    """``select_latest`` and ``select_after`` on SQLite (ids are stored as
    hex text)."""

    def select_latest(self, ids: Collection[UUID]) -> dict[UUID, StoredEvent]:
        """The highest version of each of ``ids`` that has one."""
        marks = ", ".join("?" * len(ids))
        table = self.events_table_name
        statement = (
            f"SELECT t.* FROM {table} t JOIN ("
            f"SELECT originator_id, max(originator_version) AS v FROM {table} "
            f"WHERE originator_id IN ({marks}) GROUP BY originator_id) m "
            "ON t.originator_id = m.originator_id AND t.originator_version = m.v"
        )
        found = self._rows(statement, [i.hex for i in ids])
        return {UUID(str(event.originator_id)): event for event in found}

    def select_after(self, after: Mapping[UUID, int]) -> dict[UUID, list[StoredEvent]]:
        """The events of each id of ``after`` above its version there, in
        version order (ids with none are absent)."""
        values = ", ".join(["(?, ?)"] * len(after))
        statement = (
            f"WITH a(id, gt) AS (VALUES {values}) "
            f"SELECT t.* FROM a JOIN {self.events_table_name} t "
            "ON t.originator_id = a.id AND t.originator_version > a.gt "
            "ORDER BY t.originator_id, t.originator_version"
        )
        params = [value for i, gt in after.items() for value in (i.hex, gt)]
        return _grouped(self._rows(statement, params))

    def _rows(self, statement: str, params: list[Any]) -> list[StoredEvent]:
        if not params:
            return []
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [
                StoredEvent(
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]
