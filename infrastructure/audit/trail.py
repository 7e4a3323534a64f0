"""What auditors ask (specification §7), answered from the store alone.

The audit trail reads the event log joined with its ledger
(``infrastructure/persistence/ledger.py``) and the delivery log
(``records``). The web
routes under ``/audit`` and the CLI (``idemsync history``, ``deliveries
show``, ``audit export``) both use it, so they give the same answers.

Clocks: ``recorded_at`` is when idemsync committed an event (the recorder's
clock, never going backwards within an aggregate); ``occurred_at`` is the
partner's own time for what happened, as the delivery stated it. ``as_of``
reads the recorded clock: the state at ``T`` is the state after every event
recorded at or before ``T``, which is what idemsync could have answered at
``T``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, cast

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import StoredEvent
from sqlalchemy import Engine, bindparam, text

from domain.application import AGGREGATES, SyncService
from domain.namespaces import DEFAULT_NAMESPACE
from domain.objects import SyncedObject
from domain.receipt import Receipt
from infrastructure.audit import records
from infrastructure.audit.verify import verify_chain
from infrastructure.persistence.ledger import iso, stored_id
from infrastructure.persistence.rows import KNOWN_NAMESPACES

EVENT_BOOKKEEPING = frozenset(
    {"originator_id", "originator_version", "timestamp", "source", "key"}
    | {"occurred_at", "object_id", "namespace"}
)
"""Event attributes shown elsewhere in an audit event than under ``data``."""

EVENTS_SELECT = (
    "SELECT a.notification_id, a.originator_id, a.originator_version, "
    "a.aggregate_type, a.aggregate_id, a.namespace, a.recorded_at, a.source, "
    "a.idempotency_key, a.occurred_at, a.hash, e.topic, e.state "
    "FROM event_audit a JOIN idemsync_events e "
    "ON e.originator_id = a.originator_id "
    "AND e.originator_version = a.originator_version "
)


class UnknownAggregate(Exception):
    """An aggregate type idemsync does not keep."""


class AmbiguousObject(Exception):
    """An object asked for without its namespace is in several."""


class AuditTrail:
    """Reads histories, deliveries and the global log. ``service`` decodes
    stored events and rebuilds aggregates at a version.

    An object asked for without its namespace is looked for in the
    ``namespaces`` given (the configured sources'), the store's list of
    namespaces (each a server was started with) and ``DEFAULT_NAMESPACE``:
    the one that has it is the one; several are an ``AmbiguousObject``."""

    def __init__(
        self, engine: Engine, service: SyncService, namespaces: Iterable[str] = ()
    ) -> None:
        self.engine = engine
        self.service = service
        self.postgres = engine.dialect.name == "postgresql"
        self.namespaces = tuple(dict.fromkeys(namespaces))

    def _id(self, originator_id: uuid.UUID) -> uuid.UUID | str:
        return stored_id(self.engine.dialect.name, originator_id)

    def _moment(self, at: datetime) -> datetime | str:
        return at if self.postgres else iso(at)

    def originator_id(
        self, kind: str, object_id: str, namespace: str | None = None
    ) -> tuple[uuid.UUID, str]:
        """The aggregate id of an object and its namespace: the one named,
        else the only one that has it (see the class)."""
        cls = AGGREGATES.get(kind)
        if cls is None:
            raise UnknownAggregate(
                f"no aggregate type {kind!r} (known: {', '.join(AGGREGATES)})"
            )
        if namespace is not None:
            return cls.create_id(object_id, namespace), namespace
        candidates = {
            cls.create_id(object_id, name): name for name in self._known_namespaces()
        }
        with self.engine.connect() as conn:
            found = [
                candidates[uuid.UUID(str(row[0]))]
                for row in conn.execute(
                    text(
                        "SELECT originator_id FROM event_audit "
                        "WHERE originator_version = 1 "
                        "AND originator_id IN :ids"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"ids": [self._id(oid) for oid in candidates]},
                )
            ]
        if len(found) > 1:
            raise AmbiguousObject(
                f"{kind} {object_id!r} is in several namespaces "
                f"({', '.join(sorted(found))}): name one"
            )
        name = found[0] if found else DEFAULT_NAMESPACE
        return cls.create_id(object_id, name), name

    def _known_namespaces(self) -> list[str]:
        with self.engine.connect() as conn:
            known = [name for (name,) in conn.execute(text(KNOWN_NAMESPACES))]
        return list(dict.fromkeys((DEFAULT_NAMESPACE, *self.namespaces, *known)))

    def event(self, row: Any) -> dict[str, Any]:
        """One event as auditors read it."""
        stored = StoredEvent(
            uuid.UUID(str(row.originator_id)),
            row.originator_version,
            row.topic,
            bytes(row.state),
        )
        domain_event = self.service.mapper.to_domain_event(stored)
        data = {
            name: value
            for name, value in vars(domain_event).items()
            if name not in EVENT_BOOKKEEPING
        }
        delivery = (
            {"source": row.source, "key": row.idempotency_key}
            if row.source is not None
            else None
        )
        return {
            "position": row.notification_id,
            "aggregate": {
                "type": row.aggregate_type,
                "id": row.aggregate_id,
                "namespace": row.namespace,
                "version": row.originator_version,
            },
            "type": row.topic.rpartition(".")[2],
            "occurred_at": row.occurred_at,
            "recorded_at": records.time_text(row.recorded_at),
            "delivery": delivery,
            "data": data,
            "hash": row.hash,
        }

    def events_of(
        self,
        kind: str,
        object_id: str,
        after: int = 0,
        limit: int = 100,
        namespace: str | None = None,
    ) -> dict[str, Any] | None:
        """A page of one object's events, by version; None when idemsync has
        never heard of it."""
        originator_id, namespace = self.originator_id(kind, object_id, namespace)
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    EVENTS_SELECT + "WHERE a.originator_id = :id "
                    "AND a.originator_version > :after "
                    "ORDER BY a.originator_version LIMIT :limit"
                ),
                {"id": self._id(originator_id), "after": after, "limit": limit + 1},
            ).all()
        if not rows and after == 0:
            return None
        events = [self.event(row) for row in rows[:limit]]
        more = len(rows) > limit
        return {
            "aggregate": {"type": kind, "id": object_id, "namespace": namespace},
            "events": events,
            "next_cursor": events[-1]["aggregate"]["version"] if more else None,
        }

    def chain(
        self, kind: str, object_id: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """Whether one object's events still hash to its ledger chain, from
        genesis; None when idemsync has never heard of it."""
        originator_id, namespace = self.originator_id(kind, object_id, namespace)
        report = verify_chain(self.engine, originator_id)
        if report.events == 0 and report.ledger_rows == 0:
            return None
        return {
            "aggregate": {"type": kind, "id": object_id, "namespace": namespace},
            "intact": not report.failed,
            "events": report.events,
            "ledger_rows": report.ledger_rows,
            "findings": [
                {
                    "kind": finding.kind,
                    "version": finding.version,
                    "message": finding.message,
                }
                for finding in report.findings
            ],
        }

    def state(
        self,
        kind: str,
        object_id: str,
        *,
        version: int | None = None,
        as_of: datetime | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any] | None:
        """The object at ``version``, or as recorded at ``as_of``, or now;
        None when it did not exist (yet) at that point."""
        originator_id, namespace = self.originator_id(kind, object_id, namespace)
        if as_of is not None:
            version = self.version_at(originator_id, as_of)
            if version is None:
                return None
        try:
            obj = cast(
                SyncedObject,
                self.service.repository.get(originator_id, version=version),
            )
        except AggregateNotFoundError:
            return None
        if version is not None and obj.version != version:
            return None
        recorded_at = self.recorded_at(originator_id, obj.version)
        return {
            "aggregate": {
                "type": kind,
                "id": object_id,
                "namespace": namespace,
                "version": obj.version,
            },
            "as_of": None if as_of is None else iso(as_of),
            "recorded_at": recorded_at,
            "exists": obj.exists,
            "status": obj.status,
            "fields": dict(obj.values),
            "positions": {name: list(at) for name, at in obj.positions.items()},
            "parked": [
                {"source": p["source"], "key": p["key"], "type": p["command"]["type"]}
                for p in obj.parked
            ],
        }

    def version_at(self, originator_id: uuid.UUID, at: datetime) -> int | None:
        """The last version recorded at or before ``at``: one step down the
        index on ``(originator_id, recorded_at)`` (``max(version)`` would
        read every version on one side of ``at``)."""
        with self.engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT originator_version FROM event_audit "
                    "WHERE originator_id = :id AND recorded_at <= :at "
                    "ORDER BY recorded_at DESC, originator_version DESC LIMIT 1"
                ),
                {"id": self._id(originator_id), "at": self._moment(at)},
            ).scalar()
        return None if found is None else int(found)

    def recorded_at(self, originator_id: uuid.UUID, version: int) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT recorded_at FROM event_audit "
                    "WHERE originator_id = :id AND originator_version = :version"
                ),
                {"id": self._id(originator_id), "version": version},
            ).scalar()
        return records.time_text(found)

    def log(self, after: int = 0, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The global log after position ``after``, in order, read in pages
        of 1,000 (constant memory however long the log)."""
        remaining = limit
        while remaining is None or remaining > 0:
            page = 1000 if remaining is None else min(1000, remaining)
            rows = self._log_page(after, page)
            for row in rows:
                yield self.event(row)
            if len(rows) < page:
                return
            after = rows[-1].notification_id
            if remaining is not None:
                remaining -= len(rows)

    def _log_page(self, after: int, limit: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        EVENTS_SELECT + "WHERE a.notification_id > :after "
                        "ORDER BY a.notification_id LIMIT :limit"
                    ),
                    {"after": after, "limit": limit},
                ).all()
            )

    def first_position_since(self, since: datetime) -> int:
        """The position just before the first event recorded at or after
        ``since`` (for ``idemsync audit export --since``)."""
        with self.engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT min(notification_id) FROM event_audit "
                    "WHERE recorded_at >= :at"
                ),
                {"at": self._moment(since)},
            ).scalar()
        return int(found) - 1 if found is not None else self.head()

    def head(self) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(
                text("SELECT max(notification_id) FROM event_audit")
            ).scalar()
        return int(found or 0)

    def delivery(self, source: str, key: str) -> dict[str, Any] | None:
        """One delivery: its record (while retention keeps it), its first
        answer and what became of it, and the events it caused."""
        with self.engine.connect() as conn:
            row = records.find(conn, source, key)
            events = conn.execute(
                text(
                    EVENTS_SELECT + "WHERE a.source = :source "
                    "AND a.idempotency_key = :key ORDER BY a.notification_id"
                ),
                {"source": source, "key": key},
            ).all()
        found = records.full(row) if row is not None else self._receipt(source, key)
        if found is None:
            return None
        found["events"] = [self.event(event) for event in events]
        return found

    def _receipt(self, source: str, key: str) -> dict[str, Any] | None:
        """A delivery whose record was pruned, from its receipt in the log."""
        try:
            receipt: Receipt = self.service.repository.get(
                Receipt.create_id(source, key)
            )
        except AggregateNotFoundError:
            return None
        return records.pruned(receipt)

    def deliveries(
        self,
        where: records.DeliveryFilter,
        after: tuple[str, str, str] | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """A page of delivery records (see ``records.page``)."""
        return records.page(self.engine, where, after, limit)
