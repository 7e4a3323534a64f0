"""A PostgreSQL store of millions of events, made fast and faithfully
(``python -m bench.ingest --stored-events N``).

Writing ten million events through ``SyncService`` runs at the engine's
speed (about a thousand events a second here: hours). This module writes them
at ``COPY`` speed without inventing anything the engine would not write:

1. a *template*: waves of new orders and their customers (created, paid,
   shipped and delivered, or cancelled and refunded) decided and committed
   through ``SyncService.decide``/``commit`` into a scratch database
   (``ingest.prefill``): real events, receipts, ledger rows, delivery
   records (no snapshots: no object of the template reaches the snapshot
   interval, which ``read_template`` checks);
2. *clones* of the template, each with its own ids: every ``_pre`` in an id,
   key, payload, answer or event state becomes ``_cNNNNNN``; aggregate ids are
   derived again (``domain.namespaces.object_uuid``, as ``Order``,
   ``Customer`` and ``Receipt`` derive them; checked on the template),
   notification ids follow the store's head, and each event's ledger hash is
   chained again with ``ledger.event_hash`` (recorded times are the
   template's). Events, ledger rows and delivery records go in by
   ``COPY``, one transaction per clone, from several processes;
3. the store is then brought to what a server that wrote them would leave:
   global checkpoints over the new ledger rows (``Checkpointer.catch_up``)
   and every projection caught up (``ProjectionRunner.catch_up``), each in
   its own process at once, then ``VACUUM ANALYZE``.

The indexes stay in place while copying, so every index is as deep as a
real store of that size. ``tests/integration/test_bulk_store.py`` checks a
small clone with ``audit verify`` and by loading its aggregates.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from domain.namespaces import object_uuid
from domain.provenance import Provenance
from infrastructure.persistence.database import Database
from infrastructure.persistence.ledger import GENESIS, LEDGER_COLUMNS, event_hash, iso

MARK = "_pre"
"""What every id of the template holds once (``ingest.prefill`` names)."""

EVENT_COLUMNS = (
    "originator_id",
    "originator_version",
    "topic",
    "state",
    "notification_id",
)
HOW = (
    "a template of new orders' deliveries decided and committed through "
    "SyncService into a scratch database, cloned with new ids (aggregate ids "
    "derived again, ledger hashes chained again) by COPY into the measured "
    "store, indexes in place; then checkpoints, projections caught up and "
    "VACUUM ANALYZE (bench/bulk_store.py)"
)


@dataclass(frozen=True)
class TemplateEvent:
    notification_id: int
    originator_id: uuid.UUID
    version: int
    topic: str
    state: bytes
    provenance: Provenance
    recorded_at: datetime


@dataclass(frozen=True)
class Template:
    """What the template database holds, in notification order."""

    events: list[TemplateEvent]
    kinds: dict[uuid.UUID, tuple[str, str, str]]
    """Each aggregate's type, namespace and id."""
    deliveries: list[tuple[Any, ...]]
    delivery_columns: list[str]

    @property
    def span(self) -> int:
        return max(event.notification_id for event in self.events)


def derived_id(aggregate_type: str, namespace: str, aggregate_id: str) -> uuid.UUID:
    """The id the domain derives for an object (``Order.create_id`` …;
    a receipt's ``aggregate_id`` is ``source/key``)."""
    return object_uuid(aggregate_type, namespace, aggregate_id)


def read_template(url: str) -> Template:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT e.notification_id, e.originator_id, e.originator_version, "
            "e.topic, e.state, a.aggregate_type, a.aggregate_id, a.source, "
            "a.idempotency_key, a.occurred_at, a.namespace, a.recorded_at "
            "FROM idemsync_events e JOIN event_audit a "
            "USING (originator_id, originator_version) ORDER BY e.notification_id"
        ).fetchall()
        cursor = conn.execute("SELECT * FROM deliveries ORDER BY received_at")
        columns = [column.name for column in cursor.description or []]
        deliveries = [tuple(row) for row in cursor.fetchall()]
        snapshots = conn.execute("SELECT count(*) FROM idemsync_snapshots")
        if (snapshots.fetchone() or (0,))[0]:
            raise ValueError(
                "the template has snapshots: clone them too, or shorten it"
            )
    events = [
        TemplateEvent(nid, oid, version, topic, bytes(state), Provenance(*where), at)
        for nid, oid, version, topic, state, *where, at in rows
    ]
    kinds: dict[uuid.UUID, tuple[str, str, str]] = {}
    for event in events:
        where = event.provenance
        if MARK not in where.aggregate_id:
            raise ValueError(f"template id without {MARK!r}: {where.aggregate_id}")
        kind, namespace = where.aggregate_type, where.namespace
        if derived_id(kind, namespace, where.aggregate_id) != event.originator_id:
            raise ValueError(f"{where.aggregate_id}: the domain derives another id")
        kinds[event.originator_id] = (kind, namespace, where.aggregate_id)
    return Template(events, kinds, deliveries, columns)


class Renamer:
    """Clone ``number``'s names: ``_pre`` → ``_cNNNNNN`` in text and bytes."""

    def __init__(self, number: int) -> None:
        self.text = f"_c{number:06d}"
        self.data = self.text.encode()

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(MARK, self.text)
        if isinstance(value, bytes | memoryview):
            return bytes(value).replace(MARK.encode(), self.data)
        return value

    def provenance(self, where: Provenance) -> Provenance:
        return Provenance(
            where.aggregate_type,
            self(where.aggregate_id),
            where.source,
            self(where.key),
            where.occurred_at,
            where.namespace,
        )


def clone_rows(
    template: Template, number: int, offset: int
) -> tuple[list[tuple[Any, ...]], ...]:
    """Clone ``number``'s event, ledger and delivery rows; its notification
    ids are the template's plus ``offset``."""
    rename = Renamer(number)
    ids = {
        old: derived_id(kind, namespace, rename(name))
        for old, (kind, namespace, name) in template.kinds.items()
    }
    last: dict[uuid.UUID, bytes] = {}
    events, ledger = [], []
    for event in template.events:
        new_id = ids[event.originator_id]
        state = rename(event.state)
        where = rename.provenance(event.provenance)
        notification_id = event.notification_id + offset
        digest = event_hash(
            last.get(new_id, GENESIS),
            new_id,
            event.version,
            event.topic,
            state,
            iso(event.recorded_at),
            where,
        )
        last[new_id] = digest
        events.append((new_id, event.version, event.topic, state, notification_id))
        ledger.append(
            (
                new_id,
                event.version,
                notification_id,
                where.aggregate_type,
                where.aggregate_id,
                event.recorded_at,
                where.source,
                where.key,
                where.occurred_at,
                digest.hex(),
                where.namespace,
            )
        )
    deliveries = [tuple(rename(v) for v in row) for row in template.deliveries]
    return events, ledger, deliveries


def copy_rows(
    cursor: psycopg.Cursor[Any], table: str, columns: Sequence[str], rows: Any
) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def clone_worker(
    url: str, template: Template, numbers: list[int], head: int, done: Any
) -> None:
    """Write clones ``numbers`` (1-based), one transaction each."""
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        for number in numbers:
            offset = head + (number - 1) * template.span
            events, ledger, deliveries = clone_rows(template, number, offset)
            with conn.transaction(), conn.cursor() as cursor:
                copy_rows(cursor, "idemsync_events", EVENT_COLUMNS, events)
                copy_rows(cursor, "event_audit", LEDGER_COLUMNS, ledger)
                copy_rows(cursor, "deliveries", template.delivery_columns, deliveries)
            done.put(len(events))


def results(done: Any, workers: Sequence[Any], count: int) -> Iterator[Any]:
    """``count`` results from ``done``, put there by ``workers``; fails if
    they have all exited with results still missing (one crashed)."""
    for _ in range(count):
        while True:
            try:
                yield done.get(timeout=5)
                break
            except queue.Empty:
                if not any(worker.is_alive() for worker in workers):
                    raise RuntimeError("a worker process died") from None


def clone_into(
    url: str,
    template: Template,
    copies: int,
    processes: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``copies`` clones after ``url``'s head; returns events written."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(notification_id) FROM idemsync_events")
        head = int((row.fetchone() or (0,))[0] or 0)
    context = multiprocessing.get_context("fork")  # the template is inherited
    done = context.Queue()
    workers = [
        context.Process(
            target=clone_worker,
            args=(url, template, list(range(1 + w, copies + 1, processes)), head, done),
        )
        for w in range(min(processes, copies))
    ]
    for worker in workers:
        worker.start()
    written = 0
    try:
        for count in results(done, workers, copies):
            written += count
            if progress:
                progress(written)
    finally:
        for worker in workers:
            worker.join(timeout=60)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('idemsync_events', "
            "'notification_id'), (SELECT max(notification_id) FROM idemsync_events))"
        )
    return written


def settle_job(url: str, job: str, batch_size: int, done: Any) -> None:
    """One step of ``settle`` in its own process: ``checkpoints`` or the
    name of a projection to catch up; puts (job, seconds, error)."""
    from domain.application import SyncService
    from infrastructure.audit.checkpoints import Checkpointer
    from projections.catalog import all_projections
    from projections.runner import ProjectionRunner

    began = time.monotonic()
    database = Database(url, pool_size=2)
    try:
        if job == "checkpoints":
            Checkpointer(database.engine()).catch_up()
        else:
            service = SyncService(env=database.eventsourcing_env())
            try:
                projections = {job: all_projections()[job]}
                ProjectionRunner(
                    service, database.engine(), projections, batch_size=batch_size
                ).catch_up(job)
            finally:
                service.close()
        done.put((job, time.monotonic() - began, None))
    except Exception as error:
        done.put((job, time.monotonic() - began, f"{type(error).__name__}: {error}"))
    finally:
        database.close()


def settle(database: Database, batch_size: int = 5000) -> dict[str, float]:
    """What a server leaves behind: checkpoints over the whole ledger, every
    projection at the head (one process each, at once), then fresh planner
    statistics. Seconds per step."""
    from projections.catalog import all_projections

    jobs = ["checkpoints", *all_projections()]
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    workers = [
        context.Process(target=settle_job, args=(database.url, job, batch_size, done))
        for job in jobs
    ]
    for worker in workers:
        worker.start()
    seconds: dict[str, float] = {}
    problems = []
    for job, took, problem in results(done, workers, len(jobs)):
        seconds[job if job == "checkpoints" else f"projection {job}"] = took
        if problem:
            problems.append(f"{job}: {problem}")
    for worker in workers:
        worker.join(timeout=60)
    if problems:
        raise RuntimeError("; ".join(problems))
    began = time.monotonic()
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    seconds["vacuum analyze"] = time.monotonic() - began
    return {step: round(value, 1) for step, value in seconds.items()}


def fill(
    database: Database,
    events: int,
    template: Template,
    processes: int,
) -> dict[str, Any]:
    """Clone ``template`` into ``database`` until it holds at least
    ``events`` more events, then settle it."""
    per_copy = len(template.events)
    copies = max(1, -(-events // per_copy))
    began = time.monotonic()

    def show(written: int) -> None:
        rate = written / max(time.monotonic() - began, 1e-9)
        print(
            f"\r  clone: {written:,}/{copies * per_copy:,} events, {rate:,.0f} ev/s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    written = clone_into(database.url, template, copies, processes, show)
    print(file=sys.stderr)
    copy_seconds = time.monotonic() - began
    settled = settle(database)
    return {
        "events_written": written,
        "copies": copies,
        "template_events": per_copy,
        "template_deliveries": len(template.deliveries),
        "copy_seconds": round(copy_seconds, 1),
        "copy_events_per_second": round(written / copy_seconds, 1),
        "settle_seconds": settled,
    }
