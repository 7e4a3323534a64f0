"""What one unique delivery wrote (its ``deliveries`` row, its events and
their ledger rows), read back from the server's database, and the same rows
made fresh for a new delivery: what the raw ceiling writes."""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from infrastructure.persistence.database import Database
from infrastructure.persistence.ledger import LEDGER_COLUMNS, iso
from infrastructure.persistence.rows import DELIVERY_COLUMNS

TEMPLATES = 64
"""Unique deliveries read back from the server's database for the ceiling."""


@dataclass
class Template:
    """What one unique delivery wrote: its ``deliveries`` row (the values of
    ``DELIVERY_COLUMNS``), its events and their ledger rows (the values of
    ``LEDGER_COLUMNS``), as the backend's driver returns them."""

    delivery: tuple[Any, ...]
    events: list[tuple[Any, int, str, bytes]]
    ledger: list[tuple[Any, ...]]


LEDGER_SELECT = (
    "SELECT {columns}, e.topic, e.state FROM event_audit a "
    "JOIN idemsync_events e ON e.originator_id = a.originator_id "
    "AND e.originator_version = a.originator_version "
    "WHERE a.source = {p} AND a.idempotency_key = {p} ORDER BY a.notification_id"
)


def read_templates(database: Database, count: int = TEMPLATES) -> list[Template]:
    """The first ``count`` applied deliveries, read back with their rows."""
    columns = ", ".join(DELIVERY_COLUMNS)
    ledger = ", ".join(f"a.{c}" for c in LEDGER_COLUMNS)
    select = (
        f"SELECT {columns} FROM deliveries WHERE outcome = 'applied' "
        "ORDER BY received_at LIMIT {p}"
    )
    if database.is_postgres:
        with psycopg.connect(database.url) as conn:
            rows = conn.execute(select.format(p="%s"), (count,)).fetchall()
            found = [
                (
                    row,
                    conn.execute(
                        LEDGER_SELECT.format(columns=ledger, p="%s"), (row[0], row[1])
                    ).fetchall(),
                )
                for row in rows
            ]
    else:
        with sqlite3.connect(database.sqlite_path) as conn:
            rows = conn.execute(select.format(p="?"), (count,)).fetchall()
            found = [
                (
                    row,
                    conn.execute(
                        LEDGER_SELECT.format(columns=ledger, p="?"), (row[0], row[1])
                    ).fetchall(),
                )
                for row in rows
            ]
    templates = []
    width = len(LEDGER_COLUMNS)
    for delivery, events in found:
        templates.append(
            Template(
                tuple(delivery),
                [(e[0], e[1], e[width], bytes(e[width + 1])) for e in events],
                [tuple(e[:width]) for e in events],
            )
        )
    if not templates:
        raise RuntimeError("no applied delivery to copy for the raw ceiling")
    return templates


KEY_AT = DELIVERY_COLUMNS.index("idempotency_key")
RECEIVED_AT = DELIVERY_COLUMNS.index("received_at")
LEDGER_AT = {name: LEDGER_COLUMNS.index(name) for name in LEDGER_COLUMNS}


def fresh_rows(
    template: Template, key: str, text_ids: bool
) -> tuple[tuple[Any, ...], list[tuple[Any, int, str, bytes]], list[list[Any]]]:
    """The template's rows for a new delivery: a new key, new aggregate ids,
    received and recorded now (the notification ids come from the insert)."""
    now: Any = datetime.now(UTC)
    if text_ids:
        now = iso(now)
    ids: dict[Any, Any] = {}
    events = []
    for originator_id, at_version, topic, state in template.events:
        if originator_id not in ids:
            ids[originator_id] = uuid.uuid4().hex if text_ids else uuid.uuid4()
        events.append((ids[originator_id], at_version, topic, state))
    delivery = list(template.delivery)
    delivery[KEY_AT] = key
    delivery[RECEIVED_AT] = now
    ledger = []
    for row in template.ledger:
        entry = list(row)
        entry[LEDGER_AT["originator_id"]] = ids[row[LEDGER_AT["originator_id"]]]
        entry[LEDGER_AT["recorded_at"]] = now
        entry[LEDGER_AT["idempotency_key"]] = key
        ledger.append(entry)
    return tuple(delivery), events, ledger
