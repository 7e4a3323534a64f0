"""Money as a partner writes it (a decimal string and a currency code) in the
currency's minor units, by its ISO 4217 exponent: JPY 0, EUR 2, KWD 3.

The exponents come from the ``iso4217`` package, which ships ISO 4217's own
table (List One, the maintenance agency's XML) rather than CLDR's display
precisions (``babel`` gives, e.g., 0 for some currencies whose ISO exponent
is 2). A code without a minor unit in the table (gold ``XAU``, ``XXX``) or not
in it at all is refused, as is an amount with more decimals than the
currency has: neither is rounded or guessed.
"""

from __future__ import annotations

import re
from decimal import Decimal

from iso4217 import Currency

from infrastructure.mappings import InvalidPayload

AMOUNT = re.compile(r"^(\d{1,15})(?:\.(\d{1,6}))?$")
"""A non-negative decimal as Shopify writes it ("125.00", "1500", "3.125")."""


def exponent(currency: str, path: str = "$.currency") -> int:
    """The ISO 4217 exponent (digits after the decimal point) of ``currency``."""
    try:
        found = Currency(currency.upper())
    except ValueError:
        raise InvalidPayload(f"unknown ISO 4217 currency {currency!r}", path) from None
    if found.exponent is None:
        raise InvalidPayload(
            f"currency {currency!r} has no minor unit in ISO 4217", path
        )
    return int(found.exponent)


def minor_units(
    amount: str, currency: str, path: str, currency_path: str = "$.currency"
) -> int:
    """``amount`` in ``currency``'s minor units: "125.00" EUR is 12500, "1500"
    JPY is 1500, "1.250" KWD is 1250. Trailing zeros past the exponent are
    exact and accepted ("1500.00" JPY); any other extra digit is refused."""
    digits = exponent(currency, currency_path)
    matched = AMOUNT.match(amount)
    if matched is None:
        raise InvalidPayload(f"expected a decimal amount, got {amount!r}", path)
    scaled = Decimal(amount).scaleb(digits)
    if scaled != scaled.to_integral_value():
        raise InvalidPayload(
            f"{amount!r} has more decimals than {currency.upper()} has ({digits})",
            path,
        )
    return int(scaled)
