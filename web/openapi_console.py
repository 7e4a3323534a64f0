"""The console's part of the OpenAPI document: the open pages (``/console``,
``/docs``), ``GET /auth/me``, settling a parked delivery by hand, and
erasing a customer (``web.console``, ``web.parked``, ``web.erasure``)."""

from __future__ import annotations

from domain.delivery import FIRST_OUTCOMES
from infrastructure.access import Role
from web.bodies import console
from web.openapi_parts import (
    TEXT,
    Schema,
    content,
    error,
    in_path,
    json_body,
    moment,
    one_of,
    operation,
    query,
    reading,
    switch,
)
from web.params import MAX_REASON
from web.replay import MAX_REPLAYED

NAME: Schema = {**TEXT, "minLength": 1}
"""A required name: an empty one is a 400 like a missing one."""
REASON: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_REASON,
    "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$",
}
"""Something to say besides spaces, and no NUL."""
REASON_PARAMETER: Schema = {
    **query("reason", "why (kept in the event, with the token's name)"),
    "schema": REASON,
    "required": True,
}


def pages() -> dict[str, Schema]:
    def html(operation_id: str, summary: str, description: str = "") -> Schema:
        page = content("the page (HTML)", "text/html", {"type": "string"})
        return {
            "get": operation(
                operation_id, summary, "pages", {"200": page}, description=description
            )
        }

    return {
        "/console": html(
            "console",
            "The operator console",
            "Sign in with a bearer token (kept in the tab only); each view reads "
            "the API with it, so it shows what the token's role may read.",
        ),
        "/docs": html("docs", "This API's reference (Swagger UI on `/openapi.json`)"),
        "/auth/me": {
            "get": operation(
                "whoAmI",
                "The token's configured name and role",
                "pages",
                {"200": json_body("who the token is", console.Me)},
                role=Role.READER,
            )
        },
    }


def parked() -> dict[str, Schema]:
    """``POST /admin/parked/{source}/{key}/release`` and ``…/discard``."""

    def settle(action: str, summary: str, description: str) -> Schema:
        refused = "`not_parked`: the delivery is not waiting (never parked, or "
        refused += "already resolved)"
        if action == "release":
            refused += "; `not_yet_created`: its object does not exist yet"
        parameters = [
            in_path("source", "the source's name"),
            in_path(
                "key",
                "the idempotency key (may contain `/`)",
                {"type": "string", "minLength": 1},
            ),
            REASON_PARAMETER,
        ]
        responses = {
            "200": json_body("settled", console.ParkedSettled),
            **reading(missing="no route: a key with a line break"),
            "409": error(refused),
        }
        return {
            "post": operation(
                f"{action}Parked",
                summary,
                "admin",
                responses,
                role=Role.ADMIN,
                description=description,
                parameters=parameters,
            )
        }

    return {
        "/admin/parked/{source}/{key}/release": settle(
            "release",
            "Decide a parked delivery now, on its object (which must exist)",
            "Recorded as `HandedOn` on the object (who and why), the changes its "
            "commands make, and the delivery's resolution.",
        ),
        "/admin/parked/{source}/{key}/discard": settle(
            "discard",
            "Drop a parked delivery from the queue; it is never applied",
            "Recorded as `Discarded` on the object (who and why) and the "
            "delivery's resolution `ignored`.",
        ),
    }


def erasure() -> dict[str, Schema]:
    """``POST /admin/customers/{customer_id}/erase``."""
    responses = {
        "200": json_body("what the erasure did", console.CustomerErased),
        **reading(
            missing="no source writes into that namespace; or no route: an id "
            "with a slash or a line break"
        ),
    }
    parameters = [
        in_path("customer_id", "the partner's customer id"),
        query(
            "namespace",
            "the customer's namespace; required when the sources write into several",
        ),
        REASON_PARAMETER,
    ]
    return {
        "/admin/customers/{customer_id}/erase": {
            "post": operation(
                "eraseCustomer",
                "Erase a customer's personal data (crypto-shredding)",
                "admin",
                responses,
                role=Role.ADMIN,
                description="As `idemsync erase customer`: records `Erased` on "
                "the customer (who and why, never a value), destroys its data "
                "key, redacts its raw deliveries (digests kept) and clears its "
                "read-model row. Asking again finishes an interrupted erasure.",
                parameters=parameters,
            )
        }
    }


def replay() -> dict[str, Schema]:
    """``POST /admin/replay``."""
    responses = {
        "200": json_body("what was replayed", console.ReplayReport),
        **reading(missing="no such source"),
    }
    return {
        "/admin/replay": {
            "post": operation(
                "replayDeliveries",
                "Decide a source's stored deliveries again with today's mapping",
                "admin",
                responses,
                role=Role.ADMIN,
                description="As `idemsync deliveries replay`, in the request: "
                f"more than {MAX_REPLAYED} matching deliveries is a 400. Run "
                "with `dry_run` first: it decides and writes nothing.",
                parameters=[
                    {
                        **query("source", "the source's name", NAME),
                        "required": True,
                    },
                    query(
                        "outcome",
                        "only deliveries whose current outcome is this",
                        one_of(FIRST_OUTCOMES),
                    ),
                    moment("since", "only deliveries received at or after"),
                    switch("dry_run", "decide, write nothing"),
                ],
            )
        }
    }
