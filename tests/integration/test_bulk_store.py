"""``bench/bulk_store.py`` (the ``--stored-events`` store of ``make bench``)
clones deliveries the engine wrote; these tests check that a clone is what
the engine itself would have written: the ledger verifies, the objects load,
the projections count every clone, and the store takes new deliveries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from bench import bulk_store
from bench.databases import postgres_database
from bench.ingest.prefill import prefill
from bench.ingest.signing import unique_body
from domain.application import SyncService
from domain.delivery import Delivery, Outcome
from infrastructure.audit.verify import verify
from infrastructure.mappings.standard import map_standard
from infrastructure.persistence.database import Database
from tests.conftest import PG_SERVER

pytestmark = pytest.mark.postgres

TEMPLATE_EVENTS = 300
COPIES = 3


@pytest.fixture(scope="module")
def template() -> Iterator[bulk_store.Template]:
    with postgres_database(PG_SERVER) as scratch:
        scratch.upgrade()
        prefill(scratch, TEMPLATE_EVENTS, 1)
        bulk_store.settle(scratch)
        yield bulk_store.read_template(scratch.url)


Revenue = dict[str, tuple[int, ...]]


def revenue(url: str) -> Revenue:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT currency, paid_cents, refunded_cents, orders_paid FROM revenue"
        ).fetchall()
    return {
        currency: (paid, refunded, count) for currency, paid, refunded, count in rows
    }


def counts(url: str) -> tuple[int, int, int, int]:
    with psycopg.connect(url) as conn:
        return tuple(  # type: ignore[return-value]
            (conn.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,))[0]
            for table in ("idemsync_events", "event_audit", "deliveries", "orders")
        )


def test_the_clones_verify_load_and_project_like_the_template(
    template: bulk_store.Template, postgres_url: str
) -> None:
    database = Database(postgres_url, pool_size=2)
    prefill(database, 100, 1)  # a store with events of its own first
    bulk_store.settle(database)
    before, own_revenue = counts(postgres_url), revenue(postgres_url)
    per_copy = len(template.events)

    filled = bulk_store.fill(database, COPIES * per_copy, template, processes=2)

    assert filled["copies"] == COPIES
    events, ledger, deliveries, orders = counts(postgres_url)
    assert events == ledger == before[0] + COPIES * per_copy
    assert deliveries == before[2] + COPIES * len(template.deliveries)
    report = verify(database.engine())
    assert not report.failed, report.findings
    assert report.uncovered_events == 0
    assert report.events == events

    template_orders = sum(
        1 for kind, _, _ in template.kinds.values() if kind == "order"
    )
    assert orders == before[3] + COPIES * template_orders
    template_revenue = revenue_of_template(template)
    for currency, (paid, refunded, count) in revenue(postgres_url).items():
        mine = own_revenue.get(currency, (0, 0, 0))
        theirs = template_revenue.get(currency, (0, 0, 0))
        assert (paid, refunded, count) == tuple(
            a + COPIES * b for a, b in zip(mine, theirs, strict=True)
        )

    service = SyncService(env=database.eventsourcing_env())
    try:
        namespace, order_id = next(
            (ns, n) for kind, ns, n in template.kinds.values() if kind == "order"
        )
        first, last = (
            service.state_of(
                "order", order_id.replace(bulk_store.MARK, f"_c{n:06d}"), namespace
            )
            for n in (1, COPIES)
        )
        assert first is not None and first["status"]
        assert json.dumps(last) == json.dumps(first).replace("_c000001", "_c000003")

        body = unique_body("after", 1)
        answer = service.receive(
            Delivery("bench", "after-the-clones", datetime.now(UTC), body),
            map_standard(body, {}),
        )
        assert answer.outcome is Outcome.APPLIED
        head = service.recorder.max_notification_id()
        assert head is not None and head > events
    finally:
        service.close()
    assert not verify(database.engine()).failed


def revenue_of_template(
    template: bulk_store.Template,
) -> dict[str, tuple[int, int, int]]:
    """The template database is gone: the revenue its orders make, read from
    a store that holds the template alone."""
    with postgres_database(PG_SERVER) as scratch:
        scratch.upgrade()
        bulk_store.fill(scratch, 1, template, processes=1)
        return revenue(scratch.url)
