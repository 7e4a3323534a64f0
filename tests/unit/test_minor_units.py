"""Money in minor units by the ISO 4217 exponent (specification §11)."""

from __future__ import annotations

import pytest

from infrastructure.mappings import InvalidPayload
from infrastructure.mappings.money import minor_units


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1500", "JPY", 1500),
        ("1500.00", "JPY", 1500),
        ("125.00", "EUR", 12500),
        ("0.07", "EUR", 7),
        ("409.94", "usd", 40994),
        ("1.250", "KWD", 1250),
        ("3.125", "KWD", 3125),
        ("0.001", "KWD", 1),
        ("999999999999.99", "EUR", 99999999999999),
    ],
)
def test_an_amount_is_counted_in_its_currencys_minor_units(
    amount: str, currency: str, expected: int
) -> None:
    assert minor_units(amount, currency, "$.total_price") == expected


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("1500.5", "JPY", "more decimals than JPY has (0)"),
        ("12.345", "EUR", "more decimals than EUR has (2)"),
        ("1.2345", "KWD", "more decimals than KWD has (3)"),
        ("-1.00", "EUR", "expected a decimal amount"),
        ("1e3", "EUR", "expected a decimal amount"),
        ("", "EUR", "expected a decimal amount"),
        (" 1.00", "EUR", "expected a decimal amount"),
    ],
)
def test_an_amount_that_is_not_exact_in_minor_units_is_refused_with_its_path(
    amount: str, currency: str, message: str
) -> None:
    with pytest.raises(InvalidPayload) as refused:
        minor_units(amount, currency, "$.refunds[0].transactions[1].amount")
    assert message in refused.value.message
    assert refused.value.path == "$.refunds[0].transactions[1].amount"


@pytest.mark.parametrize(
    ("currency", "message"),
    [
        ("ZZZ", "unknown ISO 4217 currency 'ZZZ'"),
        ("XAU", "no minor unit in ISO 4217"),
        ("euro", "unknown ISO 4217 currency"),
    ],
)
def test_an_unknown_currency_or_one_without_minor_units_is_refused_at_its_path(
    currency: str, message: str
) -> None:
    with pytest.raises(InvalidPayload) as refused:
        minor_units("1.00", currency, "$.total_price", "$.currency")
    assert message in refused.value.message
    assert refused.value.path == "$.currency"
