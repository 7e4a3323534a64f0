"""PostgreSQL: eventsourcing's recorder plus the delivery log, one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eventsourcing.persistence import Environment, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)

from domain.delivery import DeliveryRecord, Resolution
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
    is decided afresh.
    """

    def insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        deliveries: Sequence[DeliveryRecord] = (),
        resolutions: Sequence[Resolution] = (),
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
                notification_ids = [row["notification_id"] for row in curs.fetchall()]
            if deliveries:
                rows = [delivery_row(record) for record in deliveries]
                curs.executemany(insert_deliveries_sql("%s"), rows)
            if resolutions:
                curs.executemany(
                    update_resolutions_sql("%s"), resolution_rows(resolutions)
                )
        return notification_ids

    def find_answer(self, source: str, key: str) -> Mapping[str, Any] | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(SELECT_ANSWER_SQL.format(p="%s"), (source, key))
            row = curs.fetchone()
        return None if row is None else parse_answer(row["answer"])


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
