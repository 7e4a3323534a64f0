"""The customer transition table, cell by cell, and the deletion rules
(specification §4, "Reference domain rules")."""

from __future__ import annotations

from typing import Any

import pytest

from domain.commands import CUSTOMER_FIELDS, Command, DeleteCustomer, UpsertCustomer
from domain.customer import Customer
from domain.errors import IllegalTransition, NothingNewer, NotYetCreated
from domain.rules import (
    CUSTOMER_EVENTS,
    CUSTOMER_LIFECYCLE,
    CUSTOMER_STATUS_OF,
    CUSTOMER_TRANSITIONS,
    Verdict,
)
from tests.unit.cells import (
    SOURCE,
    Graph,
    assert_cell_is_done,
    at,
    execute,
    expected_verdict,
    key_of,
)

CUSTOMER_ID = "cus-1"
STATUSES: list[str | None] = [None, "active", "deleted"]
TARGET = {"customer.upserted": "active", "customer.deleted": "deleted"}
"""The status each event type means, as the specification names them."""
CONTRACT_LIFECYCLE: Graph = {"active": ("deleted",), "deleted": ()}
"""The specification's customer lifecycle graph, direct successors only."""


def expected_customer_verdict(status: str | None, event_type: str) -> Verdict:
    return expected_verdict(
        CONTRACT_LIFECYCLE,
        status,
        TARGET[event_type],
        creates=event_type == "customer.upserted",
    )


def upsert(step: int, /, **fields: Any) -> UpsertCustomer:
    return UpsertCustomer(customer_id=CUSTOMER_ID, fields=fields, **at(step))


def delete(step: int, /) -> DeleteCustomer:
    return DeleteCustomer(customer_id=CUSTOMER_ID, **at(step))


def full_upsert(step: int, /) -> UpsertCustomer:
    return upsert(
        step,
        email=f"c{step}@example.com",
        name=f"Customer {step}",
        phone=f"+3161234{step:04d}",
        address={"city": "Utrecht", "number": step},
    )


def command_of(event_type: str, step: int) -> Command:
    return full_upsert(step) if event_type == "customer.upserted" else delete(step)


def customer_in(status: str | None) -> tuple[Customer, int]:
    customer = Customer(CUSTOMER_ID)
    if status is None:
        return customer, 0
    execute(customer, full_upsert(1))
    if status == "active":
        return customer, 1
    execute(customer, delete(2))
    assert customer.status == "deleted"
    return customer, 2


# -- the table ---------------------------------------------------------------------


def test_the_table_has_a_row_per_status_and_a_column_per_event_type() -> None:
    assert set(CUSTOMER_TRANSITIONS) == set(STATUSES)
    for row in CUSTOMER_TRANSITIONS.values():
        assert tuple(row) == CUSTOMER_EVENTS
    assert dict(CUSTOMER_STATUS_OF) == TARGET
    assert CUSTOMER_LIFECYCLE == CONTRACT_LIFECYCLE


@pytest.mark.parametrize("event_type", CUSTOMER_EVENTS)
@pytest.mark.parametrize("status", STATUSES)
def test_each_cell_of_the_table_follows_the_lifecycle_graph(
    status: str | None, event_type: str
) -> None:
    assert CUSTOMER_TRANSITIONS[status][event_type] is expected_customer_verdict(
        status, event_type
    )


@pytest.mark.parametrize("event_type", CUSTOMER_EVENTS)
@pytest.mark.parametrize("status", STATUSES)
def test_a_newer_event_does_what_its_cell_says(
    status: str | None, event_type: str
) -> None:
    customer, last = customer_in(status)
    assert_cell_is_done(
        customer,
        status,
        command_of(event_type, last + 10),
        CUSTOMER_TRANSITIONS[status][event_type],
        created="active",
        target=TARGET[event_type],
    )


# -- deletion ------------------------------------------------------------------------


def test_deleting_a_customer_clears_email_name_phone_and_address() -> None:
    customer, _ = customer_in("active")
    deletion = delete(5)
    execute(customer, deletion)
    assert customer.status == "deleted"
    assert customer.values == dict.fromkeys(CUSTOMER_FIELDS)
    for name in CUSTOMER_FIELDS:
        assert customer.positions[name] == deletion.position()


def test_after_deletion_a_newer_upsert_is_rejected() -> None:
    customer, _ = customer_in("deleted")
    before = customer.state()
    with pytest.raises(IllegalTransition):
        execute(customer, upsert(9, email="back@example.com"))
    assert customer.state() == before


def test_after_deletion_an_older_upsert_is_stale() -> None:
    customer = Customer(CUSTOMER_ID)
    execute(customer, upsert(1, email="a@example.com"))
    execute(customer, delete(5))
    before = customer.state()
    # Even for fields no event before the deletion ever set.
    with pytest.raises(NothingNewer):
        execute(customer, upsert(3, name="Late", phone="123"))
    assert customer.state() == before


def test_a_deletion_older_than_the_latest_upsert_is_stale() -> None:
    customer = Customer(CUSTOMER_ID)
    execute(customer, upsert(1, email="a@example.com"))
    execute(customer, upsert(5, email="b@example.com"))
    before = customer.state()
    pending = len(customer.pending_events)
    # The deletion would still win name, phone and address (never set), but
    # it is older than the status, so it changes nothing.
    with pytest.raises(NothingNewer):
        execute(customer, delete(3))
    assert customer.state() == before
    assert len(customer.pending_events) == pending


def test_a_parked_deletion_is_applied_when_the_first_upsert_creates_the_customer() -> (
    None
):
    customer = Customer(CUSTOMER_ID)
    with pytest.raises(NotYetCreated):
        execute(customer, delete(2))
    customer.park(delete(2), SOURCE, key_of(delete(2)))
    resolutions = customer.execute(full_upsert(1), SOURCE, key_of(full_upsert(1)))
    assert [(r.key, r.outcome.value) for r in resolutions] == [
        (key_of(delete(2)), "applied")
    ]
    assert customer.status == "deleted"
    assert customer.values == dict.fromkeys(CUSTOMER_FIELDS)
    assert customer.state()["parked"] == []


# -- per-field last-write-wins ---------------------------------------------------------


def test_upsert_fields_are_last_write_wins_per_field() -> None:
    customer = Customer(CUSTOMER_ID)
    newer = upsert(5, email="new@example.com")
    execute(customer, newer)
    older = upsert(3, email="old@example.com", name="Ada")
    execute(customer, older)
    assert customer.values == {"email": "new@example.com", "name": "Ada"}
    assert customer.positions["email"] == newer.position()
    assert customer.positions["name"] == older.position()
    assert customer.positions["status"] == newer.position()


def test_an_older_upsert_whose_fields_were_all_set_later_is_stale() -> None:
    customer = Customer(CUSTOMER_ID)
    execute(customer, upsert(5, email="new@example.com", name="Ada"))
    with pytest.raises(NothingNewer):
        execute(customer, upsert(3, email="old@example.com"))
    assert customer.values["email"] == "new@example.com"


def test_a_null_field_clears_it_and_an_absent_field_leaves_it() -> None:
    customer = Customer(CUSTOMER_ID)
    execute(customer, upsert(1, email="a@example.com", name="Ada", phone="1"))
    execute(customer, upsert(2, phone=None))
    assert customer.values == {"email": "a@example.com", "name": "Ada", "phone": None}


def test_the_same_upsert_executed_again_with_the_same_key_is_stale() -> None:
    customer = Customer(CUSTOMER_ID)
    command = full_upsert(1)
    execute(customer, command)
    before = customer.state()
    with pytest.raises(NothingNewer):
        execute(customer, command)
    assert customer.state() == before


def test_the_same_deletion_executed_again_with_the_same_key_is_stale() -> None:
    customer, _ = customer_in("deleted")
    before = customer.state()
    with pytest.raises(NothingNewer):
        execute(customer, delete(2))
    assert customer.state() == before


def test_an_upsert_with_an_unknown_field_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown customer fields"):
        upsert(1, nickname="Ada")
