"""SQLite: eventsourcing's recorder plus the delivery log, one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import AggregateRecorder, StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
)

from domain.delivery import Ask, DeliveryRecord, FirstAnswer, Resolution
from domain.provenance import Provenance
from infrastructure.persistence import rows
from infrastructure.persistence.batch_reads import SQLiteReadsMany
from infrastructure.persistence.ledger import LedgerWriter, iso

EVENTS_TABLE = "idemsync_events"
TABLE_PREFIX = "idemsync_"


def _text_times(row: Sequence[Any]) -> tuple[Any, ...]:
    """SQLite has no time type: times are stored as ISO 8601 text in UTC, with
    microseconds always written, so that text order is time order."""
    return tuple(iso(v) if isinstance(v, datetime) else v for v in row)


class SQLiteDeliveryRecorder(SQLiteReadsMany, SQLiteApplicationRecorder):
    """Inserts delivery records (and their fingerprints), events, their
    ledger rows and resolutions in one transaction.

    The delivery insert comes first: it takes SQLite's write lock, and a key
    that was recorded meanwhile fails it with an ``IntegrityError``.
    """

    ledger = LedgerWriter("?", text_types=True)

    def __init__(
        self, datastore: SQLiteDatastore, events_table_name: str = EVENTS_TABLE
    ) -> None:
        super().__init__(datastore, events_table_name)

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        deliveries: Sequence[DeliveryRecord] = (),
        resolutions: Sequence[Resolution] = (),
        provenance: Mapping[tuple[uuid.UUID, int], Provenance] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        rows.write_deliveries(c, "?", deliveries, _text_times)
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        if stored_events and notification_ids is not None:
            self.ledger.append(c, stored_events, notification_ids, provenance or {})
        rows.write_resolutions(c, "?", resolutions, _text_times)
        return notification_ids

    def find_answer(
        self, source: str, key: str, fingerprint: str | None = None
    ) -> FirstAnswer | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(*rows.answer_query("?", source, key, fingerprint))
            row = c.fetchone()
        return None if row is None else rows.parse_answer(row)

    def find_answers(self, asks: Sequence[Ask]) -> list[FirstAnswer | None]:
        if not asks:
            return []
        with self.datastore.transaction(commit=False) as c:
            c.execute(*rows.answers_query("?", asks))
            return rows.first_answers(c.fetchall(), len(asks))


class IdemsyncSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite factory with the delivery-log recorder."""

    application_recorder_class = SQLiteDeliveryRecorder
    aggregate_recorder_class = SQLiteReadsMany

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """The library's aggregate recorder (snapshots: ``purpose="snapshots"``)
        on ``idemsync_<purpose>``, named like the event table: the library's
        SQLite names (``stored_<purpose>``) are not prefixed by the
        application's, unlike its PostgreSQL names."""
        recorder = self.aggregate_recorder_class(
            datastore=self.datastore, events_table_name=TABLE_PREFIX + purpose
        )
        if self.env_create_table():
            recorder.create_table()
        return recorder
