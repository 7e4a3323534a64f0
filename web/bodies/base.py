"""The base of every documented body, and the field types they share."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from msgspec import Meta, Struct

from domain.delivery import FIRST_OUTCOMES

Count = Annotated[int, Meta(ge=0)]
Position = Annotated[int, Meta(ge=1)]
Moment = Annotated[datetime, Meta(tz=True)]
"""Sent as ISO 8601 text with its offset (``date-time``)."""
Free = dict[str, Any]
"""A free-form object: an event's ``data``, an object's ``fields``."""
FirstOutcome = Annotated[str, Meta(extra_json_schema={"enum": list(FIRST_OUTCOMES)})]


class Body(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A JSON object the API answers with exactly these fields."""
