"""PostgreSQL: eventsourcing's recorder plus the delivery log, one transaction."""

from __future__ import annotations

import select
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import Environment, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from psycopg.sql import SQL
from psycopg_pool import ConnectionPool

from domain.delivery import Ask, DeliveryRecord, FirstAnswer, Resolution
from domain.provenance import Provenance
from infrastructure.persistence import rows
from infrastructure.persistence.batch_reads import PostgresReadsMany
from infrastructure.persistence.database import CUSTOM_PLANS
from infrastructure.persistence.ledger import LedgerWriter

STATEMENT_TIMEOUT_MS = 30_000


class PostgresDeliveryRecorder(PostgresReadsMany, PostgresApplicationRecorder):
    """Inserts delivery records (and their fingerprints), events and
    resolutions in one transaction.

    Like the library's recorder it takes ``LOCK TABLE … IN EXCLUSIVE MODE``
    before inserting events, so notification ids commit in order and a
    projection never passes a gap (docs/design.md, "Talking to PostgreSQL").
    The lock comes first, so
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
            rows.write_deliveries(curs, "%s", deliveries)
            rows.write_resolutions(curs, "%s", resolutions)
        return notification_ids

    def find_answer(
        self, source: str, key: str, fingerprint: str | None = None
    ) -> FirstAnswer | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(*rows.answer_query("%s", source, key, fingerprint))
            row = curs.fetchone()
        return None if row is None else rows.parse_answer(row)

    def find_answers(self, asks: Sequence[Ask]) -> list[FirstAnswer | None]:
        if not asks:
            return []
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(*rows.answers_query("%s", asks))
            return rows.first_answers(curs.fetchall(), len(asks))


def ping_if_readable(conn: psycopg.Connection[Any]) -> None:
    """The pool's check of a connection it is about to lend, without a round
    trip when the connection is evidently alive.

    An idle connection has nothing to read: the server speaks only when
    asked, so a readable socket means it has closed the session (restart,
    ``pg_terminate_backend``, idle timeout) or sent a notice. Only then is
    the connection pinged (``ConnectionPool.check_connection``), which raises
    if it is gone, and the pool takes another. The library's pre-ping pings
    every time: four round trips per delivery."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the connection is closed")
    if readable(conn.fileno()):
        ConnectionPool.check_connection(conn)


def readable(fd: int) -> bool:
    """Whether ``fd`` has something to read, without waiting (``poll``: a
    server process has more than ``select``'s 1024 descriptors)."""
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class IdemsyncPostgresFactory(PostgresFactory):
    """eventsourcing's PostgreSQL factory with the delivery-log recorder,
    sessions that give up on a lock or a statement instead of waiting forever
    (the request then answers 503 with ``Retry-After``), and a pool check
    that pings only connections the server may have closed
    (``ping_if_readable``)."""

    application_recorder_class = PostgresDeliveryRecorder
    aggregate_recorder_class = PostgresReadsMany

    def __init__(self, env: Environment | Mapping[str, str] | None) -> None:
        super().__init__(env)
        lock_ms = int(float(self.env.get(self.POSTGRES_LOCK_TIMEOUT) or "5") * 1000)
        connect_kwargs = self.datastore.pool.kwargs
        assert isinstance(connect_kwargs, dict)
        connect_kwargs["options"] = (
            f"-c lock_timeout={lock_ms} -c statement_timeout={STATEMENT_TIMEOUT_MS} "
            + CUSTOM_PLANS
        )
        pool = self.datastore.pool
        if pool._check is not None:  # POSTGRES_PRE_PING: psycopg-pool takes the
            pool._check = ping_if_readable  # check only in its constructor
