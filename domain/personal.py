"""Which fields of the partners' objects are personal data: the one place
that says so.

Every field a command can state is classified here, personal or not, per
aggregate type; ``tests/unit/test_personal_fields.py`` builds every kind of
command and fails on a field that is in neither list, so a new field cannot
be added without saying which it is (docs/design.md, "Personal data").
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from domain.commands import DISPUTES, REFUNDS

PERSONAL: Final = MappingProxyType(
    {
        "customer": frozenset({"email", "name", "phone", "address"}),
        "order": frozenset[str](),
        "payment": frozenset[str](),
    }
)
"""Fields that identify or locate a person (the data subject: the customer)."""

NOT_PERSONAL: Final = MappingProxyType(
    {
        "customer": frozenset[str](),
        "order": frozenset(
            {
                "customer_id",
                "currency",
                "total_cents",
                "paid_cents",
                "refunded_cents",
                "carrier",
                "tracking_number",
                "cancel_reason",
            }
        ),
        "payment": frozenset({"order_id"}),
    }
)
"""Fields that are not: amounts, statuses, carriers, and the partner's ids
(``customer_id`` is how an erasure finds the subject's orders; it names no
one outside the partner's system)."""

NOT_PERSONAL_PREFIXES: Final = MappingProxyType({"order": (REFUNDS, DISPUTES)})
"""Families of fields named by the partner's ids (one refund, one dispute):
amounts only."""


ERASED: Final = "(erased)"
"""What a personal field reads as once its data subject was erased: the
stored value is sealed with a key that no longer exists
(infrastructure/privacy), so history, ``as_of`` states and exports show
this instead."""


class UnclassifiedField(Exception):
    """A field that is neither declared personal nor declared not personal."""


def is_personal(kind: str, field: str) -> bool:
    """Whether ``field`` of an object of type ``kind`` is personal data;
    ``UnclassifiedField`` for a field this module does not know."""
    if field in PERSONAL.get(kind, ()):
        return True
    if field in NOT_PERSONAL.get(kind, ()):
        return False
    if field.startswith(NOT_PERSONAL_PREFIXES.get(kind, ())):
        return False
    raise UnclassifiedField(
        f"{kind}.{field} is not classified: add it to PERSONAL or NOT_PERSONAL "
        "in domain/personal.py"
    )
