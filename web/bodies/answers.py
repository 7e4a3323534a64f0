"""What ``POST /webhooks/{source}`` answers, the refusals, and the health
checks. ``domain.delivery.Answer.to_json`` builds the answer itself (the
domain knows nothing of HTTP); ``tests/integration/test_openapi.py`` checks
what it builds against these."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from domain.delivery import Outcome
from web.bodies.base import Body, Count, FirstOutcome


class ObjectRef(Body, kw_only=True):
    """An object addressed: the partner's id, its namespace (absent from
    answers given before namespaces) and the aggregate's version after the
    decision."""

    type: str
    id: str
    namespace: str | UnsetType = UNSET
    version: Count


class Answered(Body, kw_only=True):
    """The fields every answer to a delivery has."""

    source: str
    key: Annotated[str, Meta(description="the delivery's idempotency key")]
    aggregate: ObjectRef | UnsetType = UNSET
    aggregates: (
        Annotated[
            list[ObjectRef],
            Meta(min_length=2, description="every object addressed, when several"),
        ]
        | UnsetType
    ) = UNSET
    reason: (
        Annotated[str, Meta(description="for stale, rejected, parked, ignored")]
        | UnsetType
    ) = UNSET


class FirstAnswer(Answered, kw_only=True):
    """A delivery's first answer, repeated to its retries."""

    outcome: FirstOutcome


class Answer(Answered, kw_only=True):
    """The answer to a delivery (specification §4). `first` holds the first
    answer when `outcome` is `duplicate`."""

    outcome: Outcome
    first: FirstAnswer | UnsetType = UNSET


class Error(Body, kw_only=True):
    """A refusal: `error` is a stable code, `message` is for people."""

    error: str
    message: str
    path: (
        Annotated[str, Meta(description="the field at fault, e.g. $.data")] | UnsetType
    ) = UNSET
    mapping: (
        Annotated[
            str,
            Meta(
                description="`invalid_payload`: the source's mapping that could "
                "not read the body (`standard`, `stripe`, `shopify`, `github`, "
                "or `package.module:function`)"
            ),
        ]
        | UnsetType
    ) = UNSET


class Health(Body, kw_only=True):
    """The process answers."""

    status: Literal["ok"]


class Readiness(Body, kw_only=True):
    """`reason` says why the store is not ready (503)."""

    status: Literal["ready", "unavailable"]
    reason: str | UnsetType = UNSET
