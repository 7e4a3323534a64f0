"""Reads a test database directly, to check what was (not) stored."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from domain.application import SyncService
from domain.namespaces import DEFAULT_NAMESPACE
from infrastructure.persistence.database import Database


class Store:
    """Counts rows, reads delivery records and loads aggregates;
    ``namespace``: where ``state`` looks unless told (the namespace of the
    source whose objects the test reads)."""

    def __init__(self, url: str, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.database = Database(url)
        self.namespace = namespace
        self._service: SyncService | None = None

    def count(self, table: str) -> int:
        with self.database.engine().connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

    def topics(self, prefix: str = "") -> list[str]:
        """The topics of the stored events whose topic starts with ``prefix``
        (``domain.order:``, ``domain.receipt:``), sorted."""
        with self.database.engine().connect() as conn:
            rows = conn.execute(
                text("SELECT topic FROM idemsync_events WHERE topic LIKE :prefix"),
                {"prefix": prefix + "%"},
            )
            return sorted(topic for (topic,) in rows)

    def delivery(self, source: str, key: str) -> dict[str, Any] | None:
        with self.database.engine().connect() as conn:
            row = (
                conn.execute(
                    text(
                        "SELECT * FROM deliveries "
                        "WHERE source = :source AND idempotency_key = :key"
                    ),
                    {"source": source, "key": key},
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        record = dict(row)
        record["answer"] = json.loads(record["answer"])
        record["payload"] = bytes(record["payload"])
        return record

    def forget(self, source: str, key: str) -> None:
        """Delete a delivery record, as retention's prune does."""
        with self.database.engine().begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM deliveries "
                    "WHERE source = :source AND idempotency_key = :key"
                ),
                {"source": source, "key": key},
            )

    def keys(self) -> set[tuple[str, str]]:
        with self.database.engine().connect() as conn:
            rows = conn.execute(text("SELECT source, idempotency_key FROM deliveries"))
            return {(source, key) for source, key in rows}

    @property
    def service(self) -> SyncService:
        if self._service is None:
            self._service = SyncService(env=self.database.eventsourcing_env())
        return self._service

    def state(
        self, kind: str, object_id: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object's domain state, in ``namespace`` or the store's."""
        return self.service.state_of(kind, object_id, namespace or self.namespace)

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
        self.database.close()
