"""Events and snapshots stored before positions ended with a content digest
(their fourth element was the delivery's key) load with a tie-breaker that
sorts after every digest: an event that ties one of them on value, rank and
progress is not newer, so an old event re-sent under a fresh key after the
upgrade is stale, as a new one would be."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent

from domain.application import SyncService
from domain.commands import CreateOrder, MarkPaid
from domain.errors import NothingNewer
from domain.order import Order
from domain.rules import RECORDED_BEFORE_DIGESTS, UNKNOWN_PROGRESS

MEMORY = {"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}
AT = datetime(2026, 11, 1, tzinfo=UTC)
CREATED = CreateOrder(
    order_id="ord_1",
    customer_id="cus_1",
    currency="EUR",
    total_cents=50,
    sequence=1,
    occurred_at=AT,
)
PAID = MarkPaid(order_id="ord_1", amount_cents=50, sequence=2, occurred_at=AT)


def mapper() -> Mapper[Any]:
    """The mapper ``SyncService`` stores events with (its transcodings)."""
    return SyncService(env=MEMORY).mapper


def as_stored_before_digests(stored: StoredEvent, key: str) -> StoredEvent:
    """``stored`` as idemsync wrote it before: no class version, and the
    delivery's key where the digest is now."""
    state = json.loads(stored.state)
    if "position" in state:
        state.pop("class_version")
        state["position"][3] = key
    return StoredEvent(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=json.dumps(state).encode(),
    )


def order_stored_before_digests() -> list[StoredEvent]:
    order = Order("ord_1")
    order.execute(CREATED, "acme", "k-1")
    order.execute(PAID, "acme", "k-2")
    events = order.collect_events()
    keys = {1: "", 2: "k-1", 3: "k-2"}
    return [
        as_stored_before_digests(
            mapper().to_stored_event(event), keys[event.originator_version]
        )
        for event in events
    ]


def replay(stored: list[StoredEvent]) -> Order:
    aggregate: Aggregate | None = None
    for record in stored:
        aggregate = mapper().to_domain_event(record).mutate(aggregate)
    assert isinstance(aggregate, Order)
    return aggregate


def test_an_event_stored_with_its_key_loads_with_the_tie_breaker_of_before() -> None:
    order = replay(order_stored_before_digests())
    assert order.status == "paid"
    assert order.values["paid_cents"] == 50
    assert order.positions["paid_cents"] == (
        2,
        1,
        UNKNOWN_PROGRESS,
        RECORDED_BEFORE_DIGESTS,
    )
    assert all(at[3] == RECORDED_BEFORE_DIGESTS for at in order.positions.values())


def test_the_same_event_re_sent_under_a_fresh_key_after_the_upgrade_is_stale() -> None:
    order = replay(order_stored_before_digests())
    with pytest.raises(NothingNewer):
        order.execute(PAID, "acme", "a-fresh-key-" + "z" * 40)
    assert order.pending_events == []


def test_a_larger_total_at_the_same_position_recorded_before_is_stale() -> None:
    """The standard mapping states its paid total as progress since the
    upgrade; before, ties went by key. A payment at the same sequence as one
    recorded before is not newer, whatever its total: a captured losing
    payment re-sent under a fresh key cannot win after the upgrade."""
    order = replay(order_stored_before_digests())
    larger = MarkPaid(
        order_id="ord_1", amount_cents=900, sequence=2, occurred_at=AT, progress=900
    )
    with pytest.raises(NothingNewer):
        order.execute(larger, "acme", "zz-fresh")
    assert order.values["paid_cents"] == 50


def test_a_stated_progress_recorded_before_is_kept() -> None:
    """Stripe's mapping stated progress before the upgrade (amount_refunded):
    a larger total in the same second is still newer, an equal one is not."""
    stored = order_stored_before_digests()
    state = json.loads(stored[-1].state)
    state["position"][2] = 50
    stored[-1] = StoredEvent(
        originator_id=stored[-1].originator_id,
        originator_version=stored[-1].originator_version,
        topic=stored[-1].topic,
        state=json.dumps(state).encode(),
    )
    order = replay(stored)
    assert order.positions["paid_cents"][2] == 50
    same = MarkPaid(
        order_id="ord_1", amount_cents=50, sequence=2, occurred_at=AT, progress=50
    )
    with pytest.raises(NothingNewer):
        order.execute(same, "acme", "zz-fresh")
    larger = MarkPaid(
        order_id="ord_1", amount_cents=80, sequence=2, occurred_at=AT, progress=80
    )
    order.execute(larger, "acme", "k-4")
    assert order.values["paid_cents"] == 80


def test_a_newer_event_after_the_upgrade_still_applies() -> None:
    order = replay(order_stored_before_digests())
    later = MarkPaid(order_id="ord_1", amount_cents=70, sequence=3, occurred_at=AT)
    order.execute(later, "acme", "k-3")
    assert order.values["paid_cents"] == 70
    assert order.positions["paid_cents"] == later.position()


def test_a_snapshot_taken_before_is_upcast_the_same_way() -> None:
    order = replay(order_stored_before_digests())
    stored = mapper().to_stored_event(Order.Snapshot.take(order))
    outer = json.loads(stored.state)
    state = outer["state"]
    state.pop("class_version")
    for name in state["positions"]:
        state["positions"][name][3] = "k-2"
    old = StoredEvent(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=json.dumps(outer).encode(),
    )
    restored = mapper().to_domain_event(old).mutate(None)
    assert isinstance(restored, Order)
    assert restored.positions == order.positions
    with pytest.raises(NothingNewer):
        restored.execute(PAID, "acme", "another-fresh-key")
