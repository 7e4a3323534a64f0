"""The projections' administration in the OpenAPI document (``web.admin``):
status, and rebuilds in the background."""

from __future__ import annotations

from collections.abc import Sequence

from infrastructure.access import Role
from web.bodies import projections as rebuilds
from web.openapi_parts import (
    Schema,
    error,
    flag,
    header,
    in_path,
    json_body,
    one_of,
    operation,
    reading,
    ref,
)


def admin(projections: Sequence[str]) -> dict[str, Schema]:
    name = in_path("name", "a projection", one_of(projections))
    unknown = error("no such projection; `known` lists them", rebuilds.ProjectionError)

    return {
        "/admin/projections": {
            "get": operation(
                "listProjections",
                "Each projection's position, head, lag and state",
                "admin",
                {
                    "200": json_body("every projection", rebuilds.ProjectionStatusList),
                    **reading(bad=False),
                },
                role=Role.ADMIN,
            )
        },
        "/admin/projections/{name}/rebuild": {
            "post": operation(
                "startRebuild",
                "Rebuild a projection from the log, in the background",
                "admin",
                {
                    "202": json_body(
                        "started",
                        rebuilds.RebuildStarted,
                        {"Location": header("the rebuild's status URL")},
                    ),
                    "404": unknown,
                    "409": error(
                        "a rebuild of this projection is running",
                        rebuilds.ProjectionError,
                    ),
                },
                role=Role.ADMIN,
                description="Replays the whole log into shadow tables, catches "
                "up with live traffic and swaps atomically; reads and ingest go "
                "on. GET the `Location` for progress and the report.",
                parameters=[
                    name,
                    flag(
                        "verify", "compare with the live model and report differences"
                    ),
                    flag("dry_run", "rebuild and compare, but swap nothing"),
                ],
            ),
            "get": operation(
                "getRebuild",
                "The last rebuild of a projection started by this process",
                "admin",
                {
                    "200": json_body(
                        "running, done (with its report) or failed; or none",
                        {"anyOf": [ref(rebuilds.RebuildJob), ref(rebuilds.NoRebuild)]},
                    ),
                    "404": unknown,
                },
                role=Role.ADMIN,
                parameters=[name],
            ),
        },
    }
