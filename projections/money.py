"""An order's money fields as a projection keeps them.

A projection sees an order's events, not the order: to show what was
refunded and disputed it keeps, per order, the fields ``Order.money_of``
reads (the total stated by ``order.refunded``, and each ``refunds.<id>`` and
``disputes.<id>``), folds each event's changes into them in log order, as the
aggregate does, and asks ``Order.money_of``: the rule lives in the domain,
once. The fields by id are stored as one JSON text (keys sorted), so the same
fields are the same bytes on both backends and in a rebuild.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.order import Money, Order, is_money_field


def takes_money(changes: Mapping[str, Any]) -> bool:
    """Whether an event's ``changes`` hold a field ``Order.money_of`` reads."""
    return any(is_money_field(name) for name in changes)


@dataclass(frozen=True)
class Books:
    """One order's money fields: ``stated`` (the ``refunded_cents`` field,
    None while no ``order.refunded`` said one) and ``by_id`` (every
    ``refunds.<id>`` and ``disputes.<id>`` field)."""

    stated: int | None = None
    by_id: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def stored(cls, stated: int | None, by_id: str) -> Books:
        """The books as a row stored them (``by_id``: ``encoded_by_id``)."""
        return cls(stated, json.loads(by_id))

    def after(self, changes: Mapping[str, Any]) -> Books:
        """The books after an event's ``changes`` (the fields it won)."""
        stated = changes.get("refunded_cents", self.stated)
        taken = {
            name: value
            for name, value in changes.items()
            if is_money_field(name) and name != "refunded_cents"
        }
        return Books(stated, {**self.by_id, **taken})

    def encoded_by_id(self) -> str:
        return json.dumps(self.by_id, sort_keys=True, separators=(",", ":"))

    @property
    def money(self) -> Money:
        fields = dict(self.by_id)
        if self.stated is not None:
            fields["refunded_cents"] = self.stated
        return Order.money_of(fields)
