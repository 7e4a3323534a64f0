"""The parts ``web.openapi`` builds its operations from: responses,
parameters and the operation itself, with the role it needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from infrastructure.access import Role
from web.bodies.answers import Error
from web.params import FALSE, TRUE, Bounds

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"
BEARER = "bearerAuth"
SEGMENT: Schema = {"type": "string", "minLength": 1, "pattern": "^[^/\\x00]+$"}
"""A path segment: Starlette's ``{name}`` matches anything but ``/``."""
STRING: Schema = {"type": "string"}
TEXT: Schema = {**STRING, "pattern": "^[^\\x00]*$"}
"""Query text: anything but NUL (answered 400)."""
MOMENT: Schema = {"type": "string", "format": "date-time"}


def ref(body: type) -> Schema:
    """The schema of a body Struct (``web.bodies``), in the components."""
    return {"$ref": REF.format(name=body.__name__)}


def header(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "schema": schema or STRING}


def content(description: str, media_type: str, schema: Schema) -> Schema:
    return {"description": description, "content": {media_type: {"schema": schema}}}


def json_body(
    description: str, body: type | Schema, headers: Mapping[str, Schema] | None = None
) -> Schema:
    schema = body if isinstance(body, dict) else ref(body)
    return {
        **content(description, "application/json", schema),
        **({"headers": dict(headers)} if headers else {}),
    }


def error(description: str, body: type = Error) -> Schema:
    return json_body(description, body)


def retry_after(description: str) -> Schema:
    seconds = header("seconds to wait", {"type": "integer"})
    return json_body(description, Error, {"Retry-After": seconds})


def guarded(role: Role) -> dict[str, Schema]:
    """The refusals of an operation that needs ``role`` (``web.access``)."""
    return {
        "401": json_body(
            "`unauthorized`: no bearer token, a malformed `Authorization` "
            "header, or a token not configured",
            Error,
            {"WWW-Authenticate": header("`Bearer`")},
        ),
        "403": error(f"`forbidden`: the token's role is lower than `{role.label}`"),
    }


def reading(*, bad: bool = True, missing: str = "") -> dict[str, Schema]:
    """The refusals of a read from the store: a bad parameter (when it takes
    any), nothing at that address (when there may be none), no store."""
    bad_parameter = (
        "`bad_parameter`: a query parameter is not valid; the message says which"
    )
    return {
        **({"400": error(bad_parameter)} if bad else {}),
        **({"404": error(f"`not_found`: {missing}")} if missing else {}),
        "503": retry_after(
            "`store_unavailable`: the store did not answer; retry after `Retry-After`"
        ),
    }


def in_path(name: str, description: str, schema: Schema = SEGMENT) -> Schema:
    described = {"name": name, "in": "path", "required": True}
    return {**described, "description": description, "schema": schema}


def query(name: str, description: str, schema: Schema = TEXT) -> Schema:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def one_of(values: Iterable[str]) -> Schema:
    return {"type": "string", "enum": list(values)}


def integer(name: str, description: str, bounds: Bounds) -> Schema:
    schema: Schema = {"type": "integer", "minimum": bounds.low, "maximum": bounds.high}
    if bounds.default is not None:
        schema["default"] = bounds.default
    return query(name, description, schema)


def page(bounds: Bounds) -> list[Schema]:
    """``limit`` and ``cursor`` of a keyset page."""
    cursor = "the `next_cursor` of the previous page (opaque; any other value is a 400)"
    return [
        integer("limit", "most items in the page", bounds),
        query("cursor", cursor, STRING),
    ]


def moment(name: str, description: str) -> Schema:
    return query(name, f"{description} (ISO 8601; without a zone, UTC)", MOMENT)


def flag(name: str, description: str) -> Schema:
    yes = "`1`, `true`, `yes` or `on` (any case); anything else is no"
    return query(name, f"{description}: {yes}", STRING)


def switch(name: str, description: str) -> Schema:
    """A boolean that ``web.params.flag`` reads: anything else is a 400."""
    values = [*TRUE, *FALSE]
    yes = "`1`, `true`, `yes` or `on`; no: `0`, `false`, `no`, `off` or absent"
    return query(
        name,
        f"{description}: {yes} (any case)",
        one_of([*values, *(value.upper() for value in values)]),
    )


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: Mapping[str, Schema],
    *,
    role: Role | None = None,
    description: str = "",
    parameters: Sequence[Schema] = (),
    request_body: Schema | None = None,
) -> Schema:
    """One operation; with a ``role``, its bearer security, the role in its
    description and the 401/403 it answers."""
    access = (
        f"Role `{role.label}` or higher (`Authorization: Bearer <token>`)."
        if role is not None
        else "Open: no token."
    )
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": f"{description}\n\n{access}".strip(),
        "tags": [tag],
        "security": [{BEARER: []}] if role is not None else [],
        "responses": {**responses, **(guarded(role) if role is not None else {})},
        **({"x-role": role.label} if role is not None else {}),
        **({"parameters": list(parameters)} if parameters else {}),
        **({"requestBody": request_body} if request_body is not None else {}),
    }
