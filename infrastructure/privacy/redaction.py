"""Redacting delivery records: a data subject's raw payloads and headers go,
their digests stay.

A record keeps the raw payload and headers for ``retention_days``, and a
Shopify order or customer payload holds the customer's email, name, phone
and address. Erasing the customer cannot wait for retention, nor delete the
records: a retry is answered ``duplicate`` from the record's key and answer
(or its fingerprint's), never from its payload, and an auditor must still be
able to show what was received. So ``redact_deliveries`` empties the payload
and headers and keeps their SHA-256 and the time (migration 0009); a
redacted record is never decoded again (``infrastructure.replay``).

``subject_deliveries`` finds the records about one customer: those whose
deliveries caused an event on the customer, on its orders (the ``orders``
read model, which lags the log) or on a payment such a delivery linked;
those that addressed these objects and caused no event (stale, rejected,
parked); and those whose payload contains one of ``needles`` (the email).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text, update

from domain.namespaces import object_uuid
from infrastructure.persistence.deliveries import DELIVERIES, moment
from infrastructure.persistence.ledger import stored_id
from infrastructure.persistence.rows import redacted_columns

BATCH = 500
"""Records redacted per transaction, and ids per ``IN`` list."""
ORDERS_OF = (
    "SELECT order_id FROM orders "
    "WHERE customer_id = :customer AND namespace = :namespace"
)
CAUSED_EVENTS = (
    "SELECT DISTINCT source, idempotency_key FROM event_audit "
    "WHERE originator_id IN :ids AND source IS NOT NULL"
)


def redact_deliveries(
    engine: Engine, pairs: Iterable[tuple[str, str]], at: datetime
) -> int:
    """Redact the records of these (source, idempotency key) pairs, in
    batches of ``BATCH``, each its own transaction; how many were redacted
    now (a record already redacted, or gone, counts 0)."""
    when, redacted = moment(engine, at), 0
    for source, group in groupby(sorted(set(pairs)), key=itemgetter(0)):
        for batch in _batches([key for _, key in group]):
            with engine.begin() as conn:
                redacted += _redact(conn, source, batch, when)
    return redacted


def _redact(
    conn: Connection, source: str, keys: Sequence[str], when: datetime | str
) -> int:
    c = DELIVERIES.c
    rows = conn.execute(
        select(c.idempotency_key, c.payload, c.headers).where(
            c.source == source, c.idempotency_key.in_(keys), c.redacted_at.is_(None)
        )
    ).all()
    redacted = 0
    for key, payload, headers in rows:
        done = conn.execute(
            update(DELIVERIES)
            .where(
                c.source == source,
                c.idempotency_key == key,
                c.redacted_at.is_(None),  # else a concurrent redaction won
            )
            .values(**redacted_columns(bytes(payload), headers), redacted_at=when)
        )
        redacted += done.rowcount
    return redacted


def subject_deliveries(
    engine: Engine,
    namespace: str,
    customer_id: str,
    sources: Collection[str],
    needles: Collection[str] = (),
) -> set[tuple[str, str]]:
    """The (source, idempotency key) of every record about the customer
    ``customer_id`` of ``namespace`` (see the module's docstring);
    ``sources``: the namespace's sources, whose records are searched (the
    delivery log has no namespace)."""
    with engine.connect() as conn:
        orders = conn.execute(
            text(ORDERS_OF), {"customer": customer_id, "namespace": namespace}
        ).scalars()
        objects = {"customer": {customer_id}, "order": set(orders)}
        ids = _originators(engine, namespace, objects)
        objects["payment"] = _linked_payments(conn, namespace, ids)
        ids = _originators(engine, namespace, objects)
        found = {(row[0], row[1]) for row in _rows_in(conn, CAUSED_EVENTS, ids)}
        if sources:
            found |= _addressed(conn, sorted(sources), objects)
            found |= _containing(engine, conn, sorted(sources), needles)
    return found


def _originators(
    engine: Engine, namespace: str, objects: dict[str, set[str]]
) -> list[Any]:
    """The objects' aggregate ids as ``event_audit`` stores them (hex on
    SQLite)."""
    ids = [
        object_uuid(kind, namespace, object_id)
        for kind, object_ids in objects.items()
        for object_id in sorted(object_ids)
    ]
    return [stored_id(engine.dialect.name, i) for i in ids]


def _linked_payments(conn: Connection, namespace: str, ids: list[Any]) -> set[str]:
    """The payments that share a delivery with these objects' events: the
    checkout session that created an order also linked its payment. (A link
    whose delivery left the order unchanged is missed: finding every link
    would mean decoding every payment's events.)"""
    sql = (
        "SELECT DISTINCT p.aggregate_id FROM event_audit o JOIN event_audit p "
        "ON p.source = o.source AND p.idempotency_key = o.idempotency_key "
        "WHERE o.originator_id IN :ids AND p.aggregate_type = 'payment' "
        "AND p.namespace = :namespace"
    )
    return {row[0] for row in _rows_in(conn, sql, ids, namespace=namespace)}


def _rows_in(conn: Connection, sql: str, ids: list[Any], **params: str) -> list[Any]:
    """The rows of ``sql`` with ``:ids`` bound to each batch of ``ids``."""
    query = text(sql).bindparams(bindparam("ids", expanding=True))
    return [
        row for b in _batches(ids) for row in conn.execute(query, {"ids": b, **params})
    ]


def _addressed(
    conn: Connection, sources: list[str], objects: dict[str, set[str]]
) -> set[tuple[str, str]]:
    """The records of ``sources`` whose (first) object is one of ``objects``,
    with or without events (stale, rejected, parked)."""
    c = DELIVERIES.c
    found: set[tuple[str, str]] = set()
    for kind, object_ids in objects.items():
        for batch in _batches(sorted(object_ids)):
            query = select(c.source, c.idempotency_key).where(
                c.source.in_(sources),
                c.aggregate_type == kind,
                c.aggregate_id.in_(batch),
            )
            found.update((source, key) for source, key in conn.execute(query))
    return found


def _containing(
    engine: Engine, conn: Connection, sources: list[str], needles: Iterable[str]
) -> set[tuple[str, str]]:
    """The records of ``sources`` whose raw payload contains a needle, as
    UTF-8 or escaped as in JSON (``é`` as ``\\u00e9``); as the audit's
    ``contains`` filter, a byte search (a redacted payload contains nothing)."""
    forms = {
        form.encode("utf-8")
        for needle in needles
        if needle
        for form in (needle, json.dumps(needle)[1:-1])
    }
    found = "instr(payload, :needle)"
    if engine.dialect.name == "postgresql":
        found = "position(CAST(:needle AS bytea) IN payload)"
    query = text(
        "SELECT source, idempotency_key FROM deliveries "
        f"WHERE source IN :sources AND {found} > 0"
    ).bindparams(bindparam("sources", expanding=True))
    return {
        (source, key)
        for form in sorted(forms)
        for source, key in conn.execute(query, {"sources": sources, "needle": form})
    }


def _batches(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
