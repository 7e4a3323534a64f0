"""Two example plugin mappings in the style of docs/partners.md "Writing a mapping",
configured as ``mapping = "tests.plugin_mappings:map_github"`` (the end-to-end
tests of the partner schemes) and ``:map_shopify`` (tests that need a plugin
mapping on a Shopify source).

Each decodes only the fields it uses with a msgspec Struct (the rest of the
partner's payload is ignored), inside ``with decoding():`` so that a payload it
cannot read is answered 400 with the path of the field at fault. Money is read
in the currency's minor units by its ISO 4217 exponent (``minor_units``), and a
guest order has no customer (``customer_id=None``), as in the built-in mappings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from domain.commands import Command, CreateOrder, Ignored, UpsertCustomer
from infrastructure.mappings import decoding
from infrastructure.mappings.money import minor_units

Moment = Annotated[datetime, Meta(tz=True)]
"""A time from the payload; naive times are refused (400), never guessed."""


# -- GitHub: ``issues`` events ---------------------------------------------------------


class GitHubUser(msgspec.Struct):
    login: Annotated[str, Meta(min_length=1, max_length=100)]


class GitHubIssue(msgspec.Struct):
    number: int
    user: GitHubUser
    created_at: Moment


class IssuesEvent(msgspec.Struct):
    action: str
    issue: GitHubIssue


_issues_decoder = msgspec.json.Decoder(IssuesEvent)


def map_github(body: bytes, headers: Mapping[str, str]) -> Sequence[Command] | Ignored:
    """An opened issue makes its author a customer ``gh-<login>``."""
    event = headers.get("x-github-event")
    if event != "issues":
        return Ignored(f"no mapping for GitHub event {event!r}")
    with decoding():
        payload = _issues_decoder.decode(body)
    if payload.action != "opened":
        return Ignored(f"no mapping for issues action {payload.action!r}")
    author = payload.issue.user.login
    return [
        UpsertCustomer(
            customer_id=f"gh-{author}",
            fields={"name": author},
            occurred_at=payload.issue.created_at,
        )
    ]


# -- Shopify: ``orders/create`` --------------------------------------------------------


class ShopifyCustomer(msgspec.Struct):
    id: int


class ShopifyOrder(msgspec.Struct):
    id: int
    created_at: Moment
    currency: Annotated[str, Meta(pattern="^[A-Z]{3}$")]
    total_price: Annotated[str, Meta(max_length=40)]  # "125.00", read by minor_units
    customer: ShopifyCustomer | None = None  # absent for a guest checkout


_order_decoder = msgspec.json.Decoder(ShopifyOrder)


def map_shopify(body: bytes, headers: Mapping[str, str]) -> Sequence[Command] | Ignored:
    """A created Shopify order is created here, its total in the currency's
    minor units; a guest order has no customer."""
    topic = headers.get("x-shopify-topic")
    if topic != "orders/create":
        return Ignored(f"no mapping for topic {topic!r}")
    with decoding():
        order = _order_decoder.decode(body)
    return [
        CreateOrder(
            order_id=str(order.id),
            customer_id=str(order.customer.id) if order.customer else None,
            currency=order.currency,
            total_cents=minor_units(order.total_price, order.currency, "$.total_price"),
            occurred_at=order.created_at,
        )
    ]
