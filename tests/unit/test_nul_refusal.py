"""Any mapping, built in or a plugin, gets NUL characters refused as bad input:
PostgreSQL text cannot hold them, and a store error would be retried for ever."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.commands import CreateOrder, UpsertCustomer
from infrastructure.mappings import InvalidPayload
from infrastructure.sources import refuse_nul

AT = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_nul_in_an_id_is_refused_naming_the_command_field() -> None:
    command = CreateOrder(
        order_id="ord_\x00",
        customer_id="c",
        currency="EUR",
        total_cents=1,
        occurred_at=AT,
    )
    with pytest.raises(InvalidPayload) as refused:
        refuse_nul([command])
    assert refused.value.path == "$[0].order_id"


def test_a_nul_deep_in_customer_fields_is_refused() -> None:
    command = UpsertCustomer(
        customer_id="c", fields={"address": {"city": "a\x00b"}}, occurred_at=AT
    )
    with pytest.raises(InvalidPayload):
        refuse_nul([command])


def test_text_that_only_spells_a_nul_escape_is_accepted() -> None:
    refuse_nul(
        [UpsertCustomer(customer_id="c", fields={"name": "\\x00"}, occurred_at=AT)]
    )
