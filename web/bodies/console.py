"""What the console's own endpoints answer: who a token is
(``GET /auth/me``), and a parked delivery settled by hand
(``POST /admin/parked/...``)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from infrastructure.access import Role
from web.bodies.base import Body, FirstOutcome

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
