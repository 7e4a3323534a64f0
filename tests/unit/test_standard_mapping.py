"""The ``standard`` mapping: the envelope ``{"type", "timestamp", "data"}`` to a
domain command (specification §3), and errors that name the field path
(specification §4, status 400)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from domain.commands import (
    CancelOrder,
    Command,
    CreateOrder,
    DeleteCustomer,
    Ignored,
    MarkDelivered,
    MarkPaid,
    MarkShipped,
    RefundOrder,
    UpsertCustomer,
)
from infrastructure.mappings import InvalidPayload
from infrastructure.mappings.standard import map_standard

STAMP = "2024-05-01T12:30:00Z"
MOMENT = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def body(type_: str, data: Any, timestamp: Any = STAMP, **extra: Any) -> bytes:
    return json.dumps(
        {"type": type_, "timestamp": timestamp, "data": data, **extra}
    ).encode()


def one_command(payload: bytes) -> Command:
    mapped = map_standard(payload, {})
    assert not isinstance(mapped, Ignored), mapped
    assert len(mapped) == 1
    return mapped[0]


def refusal(payload: bytes) -> InvalidPayload:
    with pytest.raises(InvalidPayload) as refused:
        map_standard(payload, {})
    return refused.value


# -- every type of the specification's table ------------------------------------

CASES: list[tuple[str, dict[str, Any], Command]] = [
    (
        "order.created",
        {"order_id": "o1", "customer_id": "c1", "currency": "eur", "total_cents": 4999},
        CreateOrder(
            order_id="o1",
            customer_id="c1",
            currency="EUR",
            total_cents=4999,
            occurred_at=MOMENT,
        ),
    ),
    (
        "order.paid",
        {"order_id": "o1", "amount_cents": 4999},
        MarkPaid(order_id="o1", amount_cents=4999, occurred_at=MOMENT, progress=4999),
    ),
    (
        "order.shipped",
        {"order_id": "o1", "carrier": "DHL", "tracking_number": "JD0123"},
        MarkShipped(
            order_id="o1", carrier="DHL", tracking_number="JD0123", occurred_at=MOMENT
        ),
    ),
    (
        "order.delivered",
        {"order_id": "o1"},
        MarkDelivered(order_id="o1", occurred_at=MOMENT),
    ),
    (
        "order.cancelled",
        {"order_id": "o1", "reason": "customer request"},
        CancelOrder(order_id="o1", reason="customer request", occurred_at=MOMENT),
    ),
    (
        "order.refunded",
        {"order_id": "o1", "amount_cents": 1000},
        RefundOrder(
            order_id="o1", amount_cents=1000, occurred_at=MOMENT, progress=1000
        ),
    ),
    (
        "customer.upserted",
        {"customer_id": "c1", "email": "ada@example.com", "name": "Ada"},
        UpsertCustomer(
            customer_id="c1",
            fields={"email": "ada@example.com", "name": "Ada"},
            occurred_at=MOMENT,
        ),
    ),
    (
        "customer.deleted",
        {"customer_id": "c1"},
        DeleteCustomer(customer_id="c1", occurred_at=MOMENT),
    ),
]


@pytest.mark.parametrize(
    ("type_", "data", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_each_type_of_the_contract_decodes_to_its_command(
    type_: str, data: dict[str, Any], expected: Command
) -> None:
    command = one_command(body(type_, data))
    assert command == expected
    assert type(command) is type(expected)
    assert command.type == type_
    assert command.sequence is None


@pytest.mark.parametrize(
    ("type_", "data", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_data_sequence_is_honoured_for_every_type(
    type_: str, data: dict[str, Any], expected: Command
) -> None:
    command = one_command(body(type_, {**data, "sequence": 42}))
    assert command.sequence == 42
    assert command.position()[0] == 42


def test_the_currency_is_upper_cased() -> None:
    data = {"order_id": "o1", "customer_id": "c1", "currency": "uSd", "total_cents": 1}
    command = one_command(body("order.created", data))
    assert isinstance(command, CreateOrder)
    assert command.currency == "USD"


def test_the_timestamp_is_timezone_aware_and_keeps_its_offset() -> None:
    command = one_command(
        body("order.delivered", {"order_id": "o1"}, "2024-05-01T14:30:00+02:00")
    )
    assert command.occurred_at.tzinfo is not None
    assert command.occurred_at.utcoffset() == timedelta(hours=2)
    assert command.occurred_at == MOMENT
    assert command.occurred_at.tzinfo == timezone(timedelta(hours=2))


def test_without_a_sequence_the_position_is_the_timestamp_in_microseconds() -> None:
    command = one_command(
        body("order.delivered", {"order_id": "o1"}, "2024-05-01T12:30:00.000123Z")
    )
    assert command.position()[0] == int(MOMENT.timestamp()) * 1_000_000 + 123


@pytest.mark.parametrize("type_", ["order.paid", "order.refunded"])
def test_a_paid_or_refunded_total_is_the_progress_that_orders_equal_times(
    type_: str,
) -> None:
    smaller = one_command(body(type_, {"order_id": "o1", "amount_cents": 1000}))
    larger = one_command(body(type_, {"order_id": "o1", "amount_cents": 3000}))
    assert smaller.position()[:2] == larger.position()[:2]
    assert larger.position() > smaller.position()


def test_a_cancellation_without_a_reason_has_none() -> None:
    command = one_command(body("order.cancelled", {"order_id": "o1"}))
    assert command == CancelOrder(order_id="o1", reason=None, occurred_at=MOMENT)


def test_an_unknown_type_is_ignored_with_the_type_in_the_reason() -> None:
    mapped = map_standard(body("invoice.finalized", {"whatever": [1, 2]}), {})
    assert isinstance(mapped, Ignored)
    assert "invoice.finalized" in mapped.reason


def test_unknown_extra_fields_are_ignored() -> None:
    data = {"order_id": "o1", "amount_cents": 5, "note": {"nested": [1, 2]}, "x": None}
    command = one_command(body("order.paid", data, api_version="2024-01", id="evt_1"))
    assert command == MarkPaid(
        order_id="o1", amount_cents=5, occurred_at=MOMENT, progress=5
    )


def test_an_upsert_tells_an_absent_field_from_a_null_one() -> None:
    command = one_command(
        body("customer.upserted", {"customer_id": "c1", "email": None, "name": "Ada"})
    )
    assert isinstance(command, UpsertCustomer)
    assert dict(command.fields) == {"email": None, "name": "Ada"}
    assert "phone" not in command.fields
    assert "address" not in command.fields


def test_an_upsert_accepts_an_address_as_text_or_as_an_object() -> None:
    address = {"street": "Main St 1", "city": "Utrecht"}
    command = one_command(
        body("customer.upserted", {"customer_id": "c1", "address": address})
    )
    assert isinstance(command, UpsertCustomer)
    assert command.fields == {"address": address}


def test_an_upsert_with_only_the_customer_id_states_no_fields() -> None:
    command = one_command(body("customer.upserted", {"customer_id": "c1"}))
    assert isinstance(command, UpsertCustomer)
    assert dict(command.fields) == {}


# -- errors name the path ---------------------------------------------------------


def test_a_field_of_the_wrong_type_is_named_by_its_path() -> None:
    data = {
        "order_id": "o1",
        "customer_id": "c1",
        "currency": "EUR",
        "total_cents": "5",
    }
    error = refusal(body("order.created", data))
    assert error.path == "$.data.total_cents"
    assert "int" in error.message


def test_a_missing_field_names_its_object_and_the_field() -> None:
    error = refusal(
        body(
            "order.created", {"order_id": "o1", "customer_id": "c1", "currency": "EUR"}
        )
    )
    assert error.path == "$.data"
    assert "total_cents" in error.message


def test_a_missing_data_object_is_named() -> None:
    payload = json.dumps({"type": "order.paid", "timestamp": STAMP}).encode()
    error = refusal(payload)
    assert error.path == "$"
    assert "data" in error.message


def test_a_timestamp_without_a_timezone_is_refused_at_its_path() -> None:
    error = refusal(body("order.delivered", {"order_id": "o1"}, "2024-05-01T12:30:00"))
    assert error.path == "$.timestamp"
    assert "timezone" in error.message


@pytest.mark.parametrize("type_", ["order.paid", "order.refunded"])
def test_negative_cents_are_refused(type_: str) -> None:
    error = refusal(body(type_, {"order_id": "o1", "amount_cents": -1}))
    assert error.path == "$.data.amount_cents"


def test_a_negative_sequence_is_refused() -> None:
    error = refusal(body("order.delivered", {"order_id": "o1", "sequence": -1}))
    assert error.path == "$.data.sequence"


def test_an_empty_object_id_is_refused() -> None:
    error = refusal(body("order.delivered", {"order_id": ""}))
    assert error.path == "$.data.order_id"


def test_a_currency_that_is_not_three_letters_is_refused() -> None:
    data = {"order_id": "o1", "customer_id": "c1", "currency": "EURO", "total_cents": 1}
    assert refusal(body("order.created", data)).path == "$.data.currency"


@pytest.mark.parametrize(
    "payload",
    [b'{"type": "order.paid", "timestamp": ', b"", b"not json", b"\xff\xfe", b"{}}"],
    ids=["truncated", "empty", "text", "not-utf8", "trailing"],
)
def test_malformed_json_is_refused_at_the_root(payload: bytes) -> None:
    error = refusal(payload)
    assert error.path == "$"
    assert error.message


def test_a_top_level_array_is_refused_at_the_root() -> None:
    error = refusal(json.dumps([{"type": "order.delivered"}]).encode())
    assert error.path == "$"
    assert "array" in error.message


def test_a_type_that_is_not_a_string_is_refused() -> None:
    assert refusal(body(5, {"order_id": "o1"})).path == "$.type"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "digits"),
    [("amount_cents", "18446744073709551616"), ("sequence", "18446744073709551616")],
)
def test_an_integer_that_overflows_64_bits_is_refused_not_a_crash(
    field: str, digits: str
) -> None:
    data = {"order_id": "o1", "amount_cents": 1, field: 0}
    payload = body("order.paid", data).replace(
        f'"{field}": 0'.encode(), f'"{field}": {digits}'.encode()
    )
    assert digits.encode() in payload
    assert refusal(payload).path == f"$.data.{field}"


def test_a_huge_integer_of_hundreds_of_digits_is_refused_not_a_crash() -> None:
    payload = body("order.paid", {"order_id": "o1", "amount_cents": 0}).replace(
        b'"amount_cents": 0', b'"amount_cents": ' + b"9" * 400
    )
    assert refusal(payload).path == "$.data.amount_cents"


DEPTH = 10_000
NESTED = b"[" * DEPTH + b"]" * DEPTH


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "order.paid", "timestamp": "%s", "data": %s}'
        % (STAMP.encode(), NESTED),
        b'{"type": "order.paid", "timestamp": "%s", "data": {"order_id": "o1", '
        b'"amount_cents": 1, "extra": %s}}' % (STAMP.encode(), NESTED),
        b'{"type": "unknown.type", "data": %s}' % NESTED,
    ],
    ids=["as-data", "in-an-unknown-field", "under-an-unknown-type"],
)
def test_deeply_nested_json_is_refused_not_a_crash(payload: bytes) -> None:
    try:
        mapped = map_standard(payload, {})
    except InvalidPayload as error:
        assert error.path.startswith("$")
    else:
        # Ignoring the unknown type without reading the nesting is fine too.
        assert isinstance(mapped, Ignored)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "order.paid\xff", "timestamp": "%s", "data": {}}' % STAMP.encode(),
        b'{"type": "order.paid", "timestamp": "%s", '
        b'"data": {"order_id": "o\xed\xa0\x80", "amount_cents": 1}}' % STAMP.encode(),
        b'{"type": "order.paid", "timestamp": "%s", '
        b'"data": {"order_id": "o\\ud800", "amount_cents": 1}}' % STAMP.encode(),
    ],
    ids=["bad-start-byte", "encoded-surrogate", "escaped-lone-surrogate"],
)
def test_invalid_unicode_inside_a_string_is_refused_not_a_crash(payload: bytes) -> None:
    assert refusal(payload).path == "$"
