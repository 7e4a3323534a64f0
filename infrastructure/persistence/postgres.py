"""PostgreSQL: eventsourcing's recorder plus the delivery log, one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Environment, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from psycopg.sql import SQL

from domain.delivery import DeliveryRecord, FirstAnswer, Resolution
from domain.provenance import Provenance
from infrastructure.persistence.ledger import LedgerWriter
from infrastructure.persistence.rows import (
    SELECT_ANSWER_SQL,
    delivery_row,
    insert_deliveries_sql,
    parse_answer,
    resolution_rows,
    update_resolutions_sql,
)

STATEMENT_TIMEOUT_MS = 30_000


class PostgresDeliveryRecorder(PostgresApplicationRecorder):
    """Inserts delivery records, events and resolutions in one transaction.

    Like the library's recorder it takes ``LOCK TABLE … IN EXCLUSIVE MODE``
    before inserting events, so notification ids commit in order and a
    projection never passes a gap (see FIELD-NOTES). The lock comes first, so
    two writers never wait on each other's delivery rows while holding it.
    It does not retry: a failure reaches the partner as a 503 and its retry
    is decided afresh. Each event's ledger row (provenance and chained hash)
    is written in the same transaction, under the same lock.
    """

    ledger = LedgerWriter("%s", text_types=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Which id each event got, by its key rather than by row order.
        self.insert_events_statement += SQL(", originator_id, originator_version")

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        deliveries: Sequence[DeliveryRecord] = (),
        resolutions: Sequence[Resolution] = (),
        provenance: Mapping[tuple[UUID, int], Provenance] | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        notification_ids: list[int] | None = None
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
        ):
            if stored_events:
                self._lock_table(curs)
                self._notify_channel(curs)
                PostgresAggregateRecorder._insert_stored_events(
                    self, curs, stored_events
                )
                assigned = {
                    (row["originator_id"], row["originator_version"]): row[
                        "notification_id"
                    ]
                    for row in curs.fetchall()
                }
                notification_ids = [
                    assigned[(UUID(str(s.originator_id)), s.originator_version)]
                    for s in stored_events
                ]
                self.ledger.append(
                    curs, stored_events, notification_ids, provenance or {}
                )
            if deliveries:
                rows = [delivery_row(record) for record in deliveries]
                curs.executemany(insert_deliveries_sql("%s"), rows)
            if resolutions:
                curs.executemany(
                    update_resolutions_sql("%s"), resolution_rows(resolutions)
                )
        return notification_ids

    def find_answer(self, source: str, key: str) -> FirstAnswer | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(SELECT_ANSWER_SQL.format(p="%s"), (source, key))
            row = curs.fetchone()
        return None if row is None else parse_answer(row)


class IdemsyncPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory with the delivery-log recorder, and
    sessions that give up on a lock or a statement instead of waiting forever
    (the request then answers 503 with ``Retry-After``)."""

    application_recorder_class = PostgresDeliveryRecorder

    def __init__(self, env: Environment | Mapping[str, str] | None) -> None:
        super().__init__(env)
        lock_ms = int(float(self.env.get(self.POSTGRES_LOCK_TIMEOUT) or "5") * 1000)
        connect_kwargs = self.datastore.pool.kwargs
        assert isinstance(connect_kwargs, dict)
        connect_kwargs["options"] = (
            f"-c lock_timeout={lock_ms} -c statement_timeout={STATEMENT_TIMEOUT_MS}"
        )
