"""What the console's own endpoints answer: who a token is
(``GET /auth/me``), a parked delivery settled by hand
(``POST /admin/parked/...``), a replay (``POST /admin/replay``) and an
erasure (``POST /admin/customers/{id}/erase``)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from infrastructure.access import Role
from web.bodies.base import Body, Count, FirstOutcome

RoleName = Annotated[str, Meta(extra_json_schema={"enum": [r.label for r in Role]})]


class Me(Body, kw_only=True):
    """The token's configured name and role (never the token)."""

    name: str
    role: RoleName


class ParkedSettled(Body, kw_only=True):
    """What became of a parked delivery an admin settled, and who did."""

    source: str
    key: str
    action: Literal["release", "discard"]
    by: str
    resolution: FirstOutcome
    reason: str | None


class ReplayedDelivery(Body, kw_only=True):
    """One delivery replayed: its outcome before and now (the same when
    nothing changed), why, whether today's mapping refused it, and whether
    it was redacted (its payload erased: not decided again)."""

    key: str
    before: str
    now: str
    reason: str | None
    changed: bool
    failed: bool
    redacted: bool


class ReplayCounts(Body, kw_only=True):
    """How many were replayed, changed, unchanged and refused by the mapping."""

    replayed: Count
    changed: Count
    unchanged: Count
    failed: Count


class ReplayReport(Body, kw_only=True):
    """What a replay did (or, dry, would do), delivery by delivery."""

    source: str
    dry_run: bool
    by: str
    counts: ReplayCounts
    deliveries: list[ReplayedDelivery]


class CustomerErased(Body, kw_only=True):
    """What an erasure of a customer's personal data did (docs/privacy.md):
    ``recorded`` false when an earlier request recorded it (this one
    finished what was left); ``clear_events``: events holding its fields in
    clear, stored before a master key was set, which it cannot make
    unreadable."""

    namespace: str
    customer_id: str
    subject: str
    by: str
    recorded: bool
    version: Count
    key_destroyed: bool
    deliveries_redacted: Count
    snapshots_dropped: Count
    clear_events: Count
