"""``Customer.erase`` and ``SyncService.erase_customer`` (docs/privacy.md):
an erasure deletes the customer at the newest position it knows and clears
its fields, so that nothing a partner sends, in any order, at any time,
brings the data back: every later command of its history is stale or
rejected (a newer deletion of the deleted customer may still apply: it
carries no value). As a property over the valid histories of
``tests/history_strategies.py``, erased after any prefix of them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.application import SyncService
from domain.commands import CUSTOMER_FIELDS, DeleteCustomer, UpsertCustomer
from domain.customer import Customer
from domain.errors import AlreadyErased, IllegalTransition, NothingNewer
from domain.namespaces import DEFAULT_NAMESPACE
from tests.history_strategies import CUSTOMER_ID, History, histories

MEMORY = {"PERSISTENCE_MODULE": "infrastructure.persistence.memory:MemoryFactory"}


def upsert(at: int, **fields: str) -> UpsertCustomer:
    return UpsertCustomer(
        customer_id=CUSTOMER_ID,
        occurred_at=datetime.fromtimestamp(at, UTC),
        fields=fields,
    )


def test_an_erasure_deletes_clears_and_names_who_and_why_never_a_value() -> None:
    customer = Customer(CUSTOMER_ID)
    customer.execute(upsert(100, email="ada@example.org", name="Ada"), "acme", "k1")
    customer.erase("cli:dpo", "ticket 7")
    assert customer.status == "deleted" and customer.erased
    assert customer.values == dict.fromkeys(CUSTOMER_FIELDS)
    erased = customer.pending_events[-1]
    assert type(erased).__name__ == "Erased"
    assert (erased.by, erased.reason) == ("cli:dpo", "ticket 7")  # type: ignore[attr-defined]
    assert "ada@example.org" not in repr(vars(erased))


def test_after_an_erasure_older_updates_are_stale_and_newer_ones_rejected() -> None:
    customer = Customer(CUSTOMER_ID)
    customer.execute(upsert(100, email="ada@example.org"), "acme", "k1")
    customer.execute(upsert(200, phone="+44 1"), "acme", "k2")
    customer.erase("cli:dpo", "ticket 7")
    with pytest.raises(NothingNewer):
        customer.execute(upsert(150, email="ada@example.org"), "acme", "k3")
    with pytest.raises(IllegalTransition):
        customer.execute(upsert(300, email="ada@example.org"), "acme", "k4")
    assert customer.values == dict.fromkeys(CUSTOMER_FIELDS)


def test_a_customer_never_seen_can_be_erased_and_refuses_what_comes_later() -> None:
    service = SyncService(env=MEMORY)
    erased = service.erase_customer(CUSTOMER_ID, DEFAULT_NAMESPACE, "cli:dpo", "why")
    assert erased.status == "deleted" and erased.erased
    loaded = service.find("customer", CUSTOMER_ID)
    assert isinstance(loaded, Customer) and loaded.erased
    with pytest.raises(IllegalTransition):
        loaded.execute(upsert(100, email="ada@example.org"), "acme", "k1")


def test_erasing_twice_records_one_erasure() -> None:
    service = SyncService(env=MEMORY)
    first = service.erase_customer(CUSTOMER_ID, DEFAULT_NAMESPACE, "cli:dpo", "why")
    with pytest.raises(AlreadyErased):
        service.erase_customer(CUSTOMER_ID, DEFAULT_NAMESPACE, "cli:dpo", "again")
    found = service.find("customer", CUSTOMER_ID)
    assert found is not None and found.version == first.version


@settings(max_examples=200, deadline=None)
@given(history=histories(), data=st.data())
def test_nothing_of_a_history_applies_after_an_erasure_in_any_order(
    history: History, data: st.DataObject
) -> None:
    commands = [s.command for s in history if s.command.aggregate == "customer"]
    done = data.draw(st.integers(0, len(commands)), label="applied before")
    customer = Customer(CUSTOMER_ID)
    for command in commands[:done]:
        customer.execute(command, "acme", "before")
    customer.erase("cli:dpo", "property")
    for command in data.draw(st.permutations(commands), label="sent after"):
        try:
            customer.execute(command, "acme", "after")
        except (NothingNewer, IllegalTransition):
            continue
        assert isinstance(command, DeleteCustomer), "only a deletion may apply"
    assert customer.status == "deleted"
    assert all(value is None for value in customer.values.values())
