"""The reference domain's rules: lifecycles, the transition table, positions.

This module is the one place that says what an event does to an object's
status. It is data, not code, so that an auditor can read it and a test can
check it cell by cell.

Every event has a *position*: ``(value, rank, progress, content)``, compared
as a tuple. ``value`` is the source's ``sequence`` when it has one, else the
time the event occurred in microseconds since the epoch; ``rank`` is the event
type's lifecycle rank; ``progress`` is a counter from the object's own state
that only grows (0 unless a mapping knows one: a paid or refunded total, or
Stripe's ``amount_refunded``, since Stripe's clock counts whole seconds);
``content`` is a digest of what the event says about the object (its type and
values), so that the order is total and the same in every process.

Nothing a sender chooses per delivery takes part: not the idempotency key,
nor the time of sending when a sequence orders the object. The same event
re-sent under any key therefore has the same position, is not newer than
itself, and is ``stale``: a captured body replayed under a fresh key cannot
move an object back or count money twice.
"""

from __future__ import annotations

from enum import Enum
from typing import Final


class Verdict(Enum):
    """What an event does to an object in a given status.

    The verdict applies when the event's position is newer than the status's
    position. An event that is not newer never moves the status and is never
    rejected; its other fields still count, last-write-wins per field.

    ``KEEP`` is the verdict of bookkeeping events (a refund, a closed dispute,
    each by the partner's id) on an object that exists: whatever the status
    and however new the event, the status and its position stay as they are,
    the event is never rejected, and only its fields are decided,
    last-write-wins by position. Money that moved after a cancellation or a
    full refund is still money: it must be counted, not refused.
    """

    CREATE = "create"  # the object does not exist yet and this event creates it
    PARK = "park"  # the object does not exist yet: store, apply on creation
    ADVANCE = "advance"  # the new status is reachable from the current one
    SAME = "same"  # same status again: not a move, its fields still count
    REJECT = "reject"  # newer but unreachable: an illegal transition
    KEEP = "keep"  # the status is not this event's business: its fields count


C, P, A, S, R, K = (
    Verdict.CREATE,
    Verdict.PARK,
    Verdict.ADVANCE,
    Verdict.SAME,
    Verdict.REJECT,
    Verdict.KEEP,
)

Position = tuple[int, int, int, str]
"""(sequence or time in microseconds, lifecycle rank, progress, content digest)."""

RECORDED_BEFORE_DIGESTS: Final = "~"
"""The tie-breaker of a position recorded before positions had a content
digest (their fourth element was the delivery's key). It sorts after every
digest (hex digits), so an event that ties such a position on value, rank
and progress is not newer than it: re-sending an event recorded before the
upgrade under a fresh key is ``stale`` too."""

UNKNOWN_PROGRESS: Final = 2**63 - 1
"""The progress of a position recorded before a mapping stated one (0 then;
the ``standard`` mapping's totals count only since). Unknown is taken as the
most: an event at the same value and rank as one recorded before is not
newer, whatever its total, since what decided between them then (the key)
no longer exists."""

ORDER_EVENTS: Final = (
    "order.created",
    "order.paid",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
    "order.refunded",
    "order.refund_recorded",
    "order.dispute_closed",
)
"""Every order event type: the columns of ``ORDER_TRANSITIONS``, in rank
order. Stored positions hold these ranks, so a new type is appended, never
inserted."""
ORDER_MONEY_EVENTS: Final = ("order.refund_recorded", "order.dispute_closed")
"""The order events that keep books: one refund, or one closed dispute, by
the partner's id. They never move the status (``KEEP``): a refund recorded
on a cancelled or refunded order still counts."""
ORDER_STATUS_EVENTS: Final = tuple(
    event_type for event_type in ORDER_EVENTS if event_type not in ORDER_MONEY_EVENTS
)
"""The order events that state a status (a move along the lifecycle)."""
ORDER_STATUS_OF: Final = {
    "order.created": "created",
    "order.paid": "paid",
    "order.shipped": "shipped",
    "order.delivered": "delivered",
    "order.cancelled": "cancelled",
    "order.refunded": "refunded",
}

ORDER_LIFECYCLE: Final[dict[str, tuple[str, ...]]] = {
    "created": ("paid", "cancelled"),
    "paid": ("shipped", "cancelled", "refunded"),
    "shipped": ("delivered", "refunded"),
    "delivered": ("refunded",),
    "cancelled": ("refunded",),
    "refunded": (),
}
"""The specification's lifecycle graph: the direct moves. Forward moves may skip
steps, so the table below allows every status *reachable* from the current one."""

# fmt: off
ORDER_TRANSITIONS: Final[dict[str | None, dict[str, Verdict]]] = {
    # (refund: order.refund_recorded, dispute: order.dispute_closed)
    #            created paid shipped delivered cancelled refunded refund dispute
    None:        dict(zip(ORDER_EVENTS, (C, P, P, P, P, P, P, P), strict=True)),
    "created":   dict(zip(ORDER_EVENTS, (S, A, A, A, A, A, K, K), strict=True)),
    "paid":      dict(zip(ORDER_EVENTS, (R, S, A, A, A, A, K, K), strict=True)),
    "shipped":   dict(zip(ORDER_EVENTS, (R, R, S, A, R, A, K, K), strict=True)),
    "delivered": dict(zip(ORDER_EVENTS, (R, R, R, S, R, A, K, K), strict=True)),
    "cancelled": dict(zip(ORDER_EVENTS, (R, R, R, R, S, A, K, K), strict=True)),
    "refunded":  dict(zip(ORDER_EVENTS, (R, R, R, R, R, S, K, K), strict=True)),
}
# fmt: on

CUSTOMER_EVENTS: Final = ("customer.upserted", "customer.deleted")
CUSTOMER_STATUS_OF: Final = {
    "customer.upserted": "active",
    "customer.deleted": "deleted",
}
CUSTOMER_LIFECYCLE: Final[dict[str, tuple[str, ...]]] = {
    "active": ("deleted",),
    "deleted": (),
}

# fmt: off
CUSTOMER_TRANSITIONS: Final[dict[str | None, dict[str, Verdict]]] = {
    #           upserted deleted
    None:       dict(zip(CUSTOMER_EVENTS, (C, P), strict=True)),
    "active":   dict(zip(CUSTOMER_EVENTS, (S, A), strict=True)),
    "deleted":  dict(zip(CUSTOMER_EVENTS, (R, S), strict=True)),
}
# fmt: on

PAYMENT_EVENTS: Final = ("payment.linked",)
PAYMENT_STATUS_OF: Final = {"payment.linked": "linked"}

# fmt: off
PAYMENT_TRANSITIONS: Final[dict[str | None, dict[str, Verdict]]] = {
    #          linked
    None:      {"payment.linked": C},
    "linked":  {"payment.linked": S},
}
# fmt: on

RANK: Final[dict[str, int]] = {
    **{event_type: rank for rank, event_type in enumerate(ORDER_EVENTS)},
    **{event_type: rank for rank, event_type in enumerate(CUSTOMER_EVENTS)},
    **{event_type: rank for rank, event_type in enumerate(PAYMENT_EVENTS)},
}
"""Lifecycle rank, the first tie-breaker between events at the same value.
A topological order of each lifecycle graph."""
