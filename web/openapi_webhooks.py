"""``POST /webhooks/{source}`` in the OpenAPI document: the signature
headers by scheme, the request body (what the source's mapping accepts: the
``standard`` mapping's envelope Structs are its schema), and each refusal
under the status ``web.webhooks.STATUS`` gives it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from infrastructure import refusals
from web.bodies.answers import Answer
from web.openapi_parts import (
    STRING,
    Schema,
    error,
    header,
    in_path,
    json_body,
    one_of,
    operation,
    retry_after,
)
from web.webhooks import STATUS, BodyTimeout, ClientDisconnected

SIGNATURE_HEADERS = (
    ("webhook-id", "Standard Webhooks: the message id, also the idempotency key"),
    ("webhook-timestamp", "Standard Webhooks: Unix seconds, signed"),
    ("webhook-signature", "Standard Webhooks: `v1,<base64>` signatures"),
    ("svix-id", "Svix: as `webhook-id`"),
    ("svix-timestamp", "Svix: as `webhook-timestamp`"),
    ("svix-signature", "Svix: as `webhook-signature`"),
    ("Stripe-Signature", "Stripe: `t=<unix>,v1=<hex>`"),
    ("X-Hub-Signature-256", "GitHub: `sha256=<hex>`"),
    ("X-GitHub-Delivery", "GitHub: the idempotency key"),
    ("X-Shopify-Hmac-Sha256", "Shopify: base64 HMAC-SHA256 of the body"),
    ("X-Shopify-Webhook-Id", "Shopify: the idempotency key"),
    (
        "Idempotency-Key",
        "schemes `hmac-sha256` and `none`: the idempotency key by default",
    ),
)


WHY: Mapping[type[refusals.Refusal], str] = MappingProxyType(
    {
        refusals.UnreadablePayload: "`path` names the field and `mapping` the source's "
        "mapping that could not read it (also a body that is not UTF-8 or "
        "repeats a key in an object)",
        refusals.MissingKey: "the delivery names no idempotency key",
        ClientDisconnected: "the client hung up before its whole body",
        refusals.Unsigned: "signature missing or wrong, or timestamp outside tolerance "
        "(the reason is only logged)",
        refusals.UnknownSource: "no source of that name",
        BodyTimeout: "the body did not arrive whole within `[server] "
        "body_timeout_seconds`; the connection is closed",
        refusals.PayloadTooLarge: "body over the source's `max_body_bytes`; the "
        "connection is closed",
        refusals.Busy: "too much at once; nothing stored, retry after `Retry-After`",
        refusals.StoreUnavailable: "nothing stored; retry after `Retry-After`",
    }
)
"""What each refusal of a delivery means; its status is ``web.webhooks.STATUS``."""


def by_status() -> dict[str, Schema]:
    """The refusals of a delivery, grouped by the status each is given."""
    said: dict[int, list[str]] = {}
    for refusal, status in sorted(STATUS.items(), key=lambda item: item[1]):
        said.setdefault(status, []).append(f"`{refusal.error}`: {WHY[refusal]}")
    return {
        str(status): (retry_after if status == 503 else error)("; ".join(meanings))
        for status, meanings in said.items()
    }


def webhooks(envelope: Schema) -> dict[str, Schema]:
    """``POST /webhooks/{source}``; ``envelope``: the ``standard`` mapping's."""
    replayed = header("`true` on a `duplicate`", one_of(["true"]))
    receive = operation(
        "receiveWebhook",
        "Receive a partner's delivery",
        "webhooks",
        {
            "200": json_body(
                "`applied`, `duplicate` (with `first`), `stale`, `rejected` or "
                "`ignored`: decided and committed",
                Answer,
                {"Idempotent-Replayed": replayed},
            ),
            "202": json_body("`parked`: stored until its object exists", Answer),
            **by_status(),
            "431": error(
                "`headers_too_large`: more headers than `[server] max_headers`, "
                "or header names and values over `max_header_bytes` bytes; "
                "refused before the body is read, the connection is closed"
            ),
        },
        description="The raw body is verified with the source's signature "
        "scheme (the headers below, by scheme; a `hmac-sha256` source names "
        "its own), mapped to commands and decided exactly once per "
        "`(source, idempotency key)`. A 2xx is sent only after the delivery "
        "and its events are committed; anything else stored nothing.",
        parameters=[
            in_path("source", "a configured source name (`[sources.NAME]`)"),
            *(
                {"name": name, "in": "header", "description": about, "schema": STRING}
                for name, about in SIGNATURE_HEADERS
            ),
        ],
        request_body={
            "required": True,
            "description": "The partner's JSON, verified over its raw bytes: "
            "what the mapping of the source (`[sources.NAME] mapping`) "
            "accepts. The schema is the built-in `standard` mapping's "
            'envelope, `{"type", "timestamp", "data"}`, one per mapped '
            "`type` (another `type` is `ignored`); `stripe`, `shopify` and "
            "`github` read their partner's own events, and a "
            "`package.module:function` mapping what it reads.",
            "content": {
                "application/json": {
                    "schema": {"anyOf": [envelope, {"type": "object"}]}
                }
            },
        },
    )
    return {"/webhooks/{source}": {"post": receive}}
