"""Stores written by earlier releases, for upgrade tests.

Each folder of ``tests/fixtures/stores/`` holds a store written by one
release (``sqlite.sql``, ``postgres.sql``: SQL dumps) and what that release
read back from it (``expected.json``). ``load_sqlite``/``load_postgres`` put a
dump into a fresh database; ``observe`` reads a store the way idemsync shows
it (objects through the audit trail, read-model tables, delivery records,
receipts, ``audit verify``); ``differences`` names what an upgraded store
shows differently from ``expected.json``. ``tests/fixtures/stores/generate.py``
writes the expected side with the same ``observe``.

Only what the expected side names is compared: a column, a field or a
section that a later release adds is not a difference, a value that changed
or went missing is. Positions (what each field's last write was ordered by)
are left out on purpose: their form may change between releases while the
objects stay the same.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import psycopg
from sqlalchemy import Engine, text

from domain.application import SyncService
from domain.receipt import Receipt
from idemsync.cli_projections import projection_runner
from infrastructure.audit import records
from infrastructure.audit.trail import AuditTrail
from infrastructure.audit.verify import Report, verify
from infrastructure.persistence.database import Database
from infrastructure.persistence.ledger import iso, parse_time
from infrastructure.privacy.keys import MasterKey
from infrastructure.settings import Settings
from projections.rebuild import rebuild
from tests.read_models import snapshot

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "stores"
BACKENDS = ("sqlite", "postgres")
SECTIONS = ("objects", "read_models", "deliveries", "receipts", "audit")
"""The parts of ``expected.json`` that ``observe`` reads and ``differences``
compares (``fixture`` and ``sources`` describe the fixture)."""
SHOWN = 5
"""Rows of a table shown per kind of difference."""


@dataclass(frozen=True)
class StoreFixture:
    """One folder of ``tests/fixtures/stores/``."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def dump(self, backend: str) -> str:
        return (self.path / f"{backend}.sql").read_text(encoding="utf-8")

    @cached_property
    def expected(self) -> dict[str, Any]:
        loaded = json.loads((self.path / "expected.json").read_text("utf-8"))
        return cast(dict[str, Any], loaded)


def store_fixtures() -> list[StoreFixture]:
    """Every fixture folder (all but ``_``/``.`` names), by name."""
    return [
        StoreFixture(path)
        for path in sorted(FIXTURES.iterdir())
        if path.is_dir() and not path.name.startswith(("_", "."))
    ]


def load_sqlite(dump: str, path: Path) -> str:
    """A new SQLite file at ``path`` made from ``dump``
    (``sqlite3.Connection.iterdump`` output); its URL."""
    if path.exists():
        raise FileExistsError(path)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(dump)
    return f"sqlite:///{path}"


def postgres_script(dump: str) -> str:
    """``pg_dump --inserts`` output without psql's meta-commands (lines
    starting with a backslash, e.g. ``\\restrict``), which the server does
    not know; every other line is plain SQL."""
    lines = [line for line in dump.splitlines() if not line.startswith("\\")]
    return "\n".join(lines) + "\n"


def load_postgres(dump: str, url: str) -> None:
    """Run ``dump`` (``pg_dump --inserts`` output) in the empty database at
    ``url``, in one transaction."""
    with psycopg.connect(url) as conn:
        conn.execute(postgres_script(dump))


def observe(url: str) -> dict[str, Any]:
    """What the store at ``url`` holds, as ``expected.json``'s sections."""
    database = Database(url)
    service = SyncService(env=database.eventsourcing_env())
    try:
        engine = database.engine()
        return {
            "objects": _objects(engine, AuditTrail(engine, service)),
            "read_models": _read_models(url),
            "deliveries": _deliveries(engine),
            "receipts": _receipts(engine, service),
            "audit": audit_summary(verify(engine)),
        }
    finally:
        service.close()
        database.close()


def _ids(engine: Engine, kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(type, id)`` of every aggregate of ``kinds`` the ledger names."""
    marks = ", ".join(f":k{i}" for i in range(len(kinds)))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT DISTINCT aggregate_type, aggregate_id FROM event_audit "
                f"WHERE aggregate_type IN ({marks})"
            ),
            {f"k{i}": kind for i, kind in enumerate(kinds)},
        ).all()
    return sorted((str(kind), str(object_id)) for kind, object_id in rows)


def _objects(engine: Engine, trail: AuditTrail) -> dict[str, Any]:
    """Each order and customer as ``/audit/aggregates/{type}/{id}`` shows it
    now, without its positions."""
    found = {}
    for kind, object_id in _ids(engine, ("order", "customer")):
        state = trail.state(kind, object_id)
        if state is None:
            raise AssertionError(f"{kind} {object_id} is in the ledger but not found")
        found[f"{kind}/{object_id}"] = {
            "exists": state["exists"],
            "status": state["status"],
            "values": _plain(state["fields"]),
            "parked": state["parked"],
            "version": state["aggregate"]["version"],
            "recorded_at": state["recorded_at"],
        }
    return found


def _read_models(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every read-model table's rows, by primary key."""
    return {
        table: [{k: _plain(v) for k, v in row.items()} for row in rows]
        for table, rows in snapshot(url).items()
    }


def _deliveries(engine: Engine) -> dict[str, Any]:
    """Each delivery record as ``/audit/deliveries`` lists it, with the
    SHA-256 of its raw payload."""
    items: list[dict[str, Any]] = []
    after: tuple[str, str, str] | None = None
    while True:
        page = records.page(engine, records.DeliveryFilter(), after, limit=500)
        items += page["items"]
        if page["next"] is None:
            break
        after = tuple(page["next"])
    with engine.connect() as conn:
        payloads = {
            f"{source}/{key}": hashlib.sha256(bytes(payload)).hexdigest()
            for source, key, payload in conn.execute(
                text("SELECT source, idempotency_key, payload FROM deliveries")
            )
        }
    found = {}
    for item in items:
        name = f"{item.pop('source')}/{item.pop('key')}"
        found[name] = {**item, "payload_sha256": payloads[name]}
    return dict(sorted(found.items()))


def _receipts(engine: Engine, service: SyncService) -> dict[str, Any]:
    """Each delivery's receipt in the event log (pruned records included)."""
    found = {}
    for _, name in _ids(engine, ("delivery",)):
        source, _, key = name.partition("/")
        receipt = cast(Receipt, service.repository.get(Receipt.create_id(source, key)))
        found[name] = {
            "outcome": receipt.outcome,
            "reason": receipt.reason,
            "answer": receipt.answer,
            "received_at": records.time_text(receipt.received_at),
            "resolution": receipt.resolution,
            "version": receipt.version,
        }
    return found


def audit_summary(report: Report) -> dict[str, Any]:
    """``idemsync audit verify``'s result: counts, findings and the head."""
    head = report.head
    return {
        "failed": report.failed,
        "counts": report.counts,
        "unchecked_links": report.unchecked_links,
        "findings": [
            f"{f.kind} {f.aggregate_type}/{f.aggregate_id} v{f.version}: {f.message}"
            for f in report.findings
        ],
        "head": None
        if head is None
        else {
            "seq": head.seq,
            "first_notification_id": head.first_notification_id,
            "last_notification_id": head.last_notification_id,
            "events": head.events,
            "hash": head.hash,
        },
    }


def _plain(value: Any) -> Any:
    """``value`` as JSON holds it; times as ISO 8601 in UTC (SQLite gives
    naive UTC times or text, PostgreSQL aware ones in the session's zone)."""
    if isinstance(value, datetime):
        return iso(parse_time(value))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """What ``found`` (``observe``) shows differently from ``expected``, one
    line per difference; empty when it shows everything the same."""
    lines: list[str] = []
    for section in SECTIONS:
        if section not in expected:
            continue
        if section not in found:
            lines.append(f"{section}: not observed")
        elif section == "read_models":
            for table, rows in expected[section].items():
                lines += _table_differences(table, rows, found[section].get(table))
        elif section == "audit":
            lines += _value_differences("audit", expected[section], found[section])
        else:
            lines += _keyed_differences(section, expected[section], found[section])
    return lines


def _keyed_differences(
    section: str, expected: dict[str, Any], found: dict[str, Any]
) -> list[str]:
    lines = [f"{section}: {name} missing" for name in expected if name not in found]
    lines += [
        f"{section}: {name} not expected" for name in found if name not in expected
    ]
    for name, wanted in expected.items():
        if name in found:
            lines += _value_differences(f"{section}[{name}]", wanted, found[name])
    return lines


EXACT = frozenset({"values", "answer"})
"""Fields compared whole: an object's values and a first answer must not
gain keys either."""


def _value_differences(where: str, expected: Any, found: Any) -> list[str]:
    """Field by field for dicts, down to the differing value (fields only
    ``found`` has are new in a later release, not differences), except the
    ``EXACT`` ones; anything else by equality."""
    exact = where.rpartition(".")[2] in EXACT
    if isinstance(expected, dict) and isinstance(found, dict) and not exact:
        lines = []
        for field, wanted in expected.items():
            if field not in found:
                lines.append(f"{where}.{field}: missing (expected {wanted!r})")
            else:
                lines += _value_differences(f"{where}.{field}", wanted, found[field])
        return lines
    if expected != found:
        return [f"{where}: expected {expected!r}, found {found!r}"]
    return []


def _table_differences(
    table: str, expected: list[dict[str, Any]], found: list[dict[str, Any]] | None
) -> list[str]:
    """Rows compared on the expected columns (a column a later release adds
    is not compared), as multisets."""
    if found is None:
        return [f"read_models.{table}: table missing"]
    columns = sorted({column for row in expected for column in row})
    missing_columns = [c for c in columns if found and c not in found[0]]
    if missing_columns:
        return [f"read_models.{table}: columns missing: {missing_columns}"]

    def key(row: dict[str, Any]) -> str:
        return json.dumps({c: row.get(c) for c in columns}, sort_keys=True)

    wanted, have = Counter(map(key, expected)), Counter(map(key, found))
    lost, new = sorted((wanted - have).elements()), sorted((have - wanted).elements())
    lines = []
    if lost or new:
        lines.append(
            f"read_models.{table}: {len(lost)} expected rows not found, "
            f"{len(new)} rows not expected"
        )
    lines += [f"  expected, not found: {row}" for row in lost[:SHOWN]]
    lines += [f"  found, not expected: {row}" for row in new[:SHOWN]]
    return lines


def rebuild_differences(url: str, master_key: MasterKey | None = None) -> list[str]:
    """``idemsync projections rebuild --all --verify --dry-run`` on ``url``
    (the CLI's runner and rebuild): one line per table whose rebuild from
    the log differs from its live rows, with a few examples. ``master_key``:
    the store's ``[privacy] master_key``, if it has one."""
    settings = Settings(
        database_url=url,
        sources=MappingProxyType({}),
        config_path=Path("tests"),
        master_key=master_key,
    )
    runner, database = projection_runner(settings)
    lines = []
    try:
        for name in runner.projections:
            report = rebuild(runner, name, verify=True, dry_run=True)
            if report.note:
                lines.append(f"rebuild {name}: {report.note}")
            for diff in report.differences or ():
                if diff.differing:
                    lines.append(
                        f"rebuild {name}: {diff.table}: {diff.differing} rows differ, "
                        f"e.g. {list(diff.examples)}"
                    )
    finally:
        runner.service.close()
        database.close()
    return lines
