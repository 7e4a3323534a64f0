"""Namespaces in the domain: an object is (namespace, type, id), and the
namespace ``default`` keeps the ids objects had before namespaces."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from domain.application import SyncService
from domain.commands import CreateOrder, MarkPaid
from domain.delivery import Delivery, Outcome
from domain.namespaces import DEFAULT_NAMESPACE, NAMESPACE, NAMESPACE_NAME, object_uuid
from domain.order import Order
from domain.provenance import Provenance
from infrastructure.persistence.ledger import GENESIS, event_hash
from tests.histories import MEMORY_ENV

AT = datetime(2026, 12, 5, tzinfo=UTC)
names = st.from_regex(NAMESPACE_NAME, fullmatch=True)
ids = st.text(min_size=1, max_size=20)


def test_the_default_namespace_keeps_the_ids_objects_had_before_namespaces() -> None:
    assert Order.create_id("ord_1") == uuid.uuid5(NAMESPACE, "order/ord_1")
    assert object_uuid("order", DEFAULT_NAMESPACE, "ord_1") == Order.create_id("ord_1")


@given(names, ids, names, ids)
def test_two_objects_share_an_id_only_when_namespace_and_id_are_the_same(
    first_ns: str, first_id: str, second_ns: str, second_id: str
) -> None:
    same = (first_ns, first_id) == (second_ns, second_id)
    first = object_uuid("order", first_ns, first_id)
    assert (first == object_uuid("order", second_ns, second_id)) is same
    assert first != object_uuid("customer", first_ns, first_id)


def delivery(key: str, namespace: str) -> Delivery:
    return Delivery("acme", key, AT, b"{}", namespace=namespace)


def test_the_same_order_id_in_two_namespaces_is_two_orders() -> None:
    service = SyncService(env=MEMORY_ENV)
    create = CreateOrder(
        order_id="1001", customer_id="c", currency="EUR", total_cents=5, occurred_at=AT
    )
    assert (
        service.receive(delivery("k1", "shop-a"), [create]).outcome is Outcome.APPLIED
    )
    pay = MarkPaid(order_id="1001", amount_cents=5, occurred_at=AT)
    parked = service.receive(delivery("k2", "shop-b"), [pay])
    assert parked.outcome is Outcome.PARKED, "shop-b has no order 1001"
    assert parked.objects[0].namespace == "shop-b"
    mine = service.find("order", "1001", "shop-a")
    assert mine is not None and (mine.status, mine.namespace) == ("created", "shop-a")
    theirs = service.find("order", "1001", "shop-b")
    assert theirs is not None and not theirs.exists and theirs.parked
    assert service.find("order", "1001") is None, "nothing in the default namespace"


def test_a_ledger_row_hashes_its_namespace_unless_it_is_the_default() -> None:
    def digest(namespace: str) -> bytes:
        where = Provenance("order", "1", "acme", "k", None, namespace)
        return event_hash(GENESIS, uuid.UUID(int=1), 1, "t", b"{}", "now", where)

    legacy = Provenance("order", "1", "acme", "k", None)
    assert digest(DEFAULT_NAMESPACE) == event_hash(
        GENESIS, uuid.UUID(int=1), 1, "t", b"{}", "now", legacy
    )
    assert len({digest(DEFAULT_NAMESPACE), digest("shop"), digest("shop2")}) == 3
