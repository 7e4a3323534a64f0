"""A test mapping for refunds and disputes by id, configured as ``mapping =
"tests.money_mappings:map_money"``: the built-in ``standard`` mapping
does not make ``RecordRefund`` or ``RecordDispute``.

It reads the ``standard`` envelope; ``refund.recorded`` and
``dispute.closed`` (data: order_id, refund_id or dispute_id, amount_cents,
lost, sequence) become those commands, any other type goes to the
``standard`` mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from domain.commands import Command, Ignored, RecordDispute, RecordRefund
from infrastructure.mappings import decoding
from infrastructure.mappings.standard import map_standard


class Head(msgspec.Struct):
    type: str


class RefundData(msgspec.Struct):
    order_id: str
    refund_id: str
    amount_cents: Annotated[int, Meta(ge=0)]
    sequence: int | None = None


class DisputeData(msgspec.Struct):
    order_id: str
    dispute_id: str
    amount_cents: Annotated[int, Meta(ge=0)]
    lost: bool
    sequence: int | None = None


Moment = Annotated[datetime, Meta(tz=True)]


class RefundEnvelope(msgspec.Struct, tag_field="type", tag="refund.recorded"):
    timestamp: Moment
    data: RefundData


class DisputeEnvelope(msgspec.Struct, tag_field="type", tag="dispute.closed"):
    timestamp: Moment
    data: DisputeData


_head = msgspec.json.Decoder(Head)
_money = msgspec.json.Decoder(RefundEnvelope | DisputeEnvelope)


def map_money(body: bytes, headers: Mapping[str, str]) -> Sequence[Command] | Ignored:
    """A refund or a closed dispute by id; anything else as ``standard``."""
    with decoding():
        kind = _head.decode(body).type
    if kind not in ("refund.recorded", "dispute.closed"):
        return map_standard(body, headers)
    with decoding():
        event = _money.decode(body)
    d = event.data
    at: dict[str, Any] = {
        "order_id": d.order_id,
        "occurred_at": event.timestamp,
        "sequence": d.sequence,
    }
    if isinstance(d, RefundData):
        return [RecordRefund(refund_id=d.refund_id, amount_cents=d.amount_cents, **at)]
    return [
        RecordDispute(
            dispute_id=d.dispute_id, amount_cents=d.amount_cents, lost=d.lost, **at
        )
    ]
