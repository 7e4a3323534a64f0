"""Decoding TOML tables into msgspec Structs; every error names the dotted key.

A table's keys, types, bounds and defaults are written once, as a Struct
(``forbid_unknown_fields=True``). :func:`decode` converts a table into one and
translates msgspec's ``ValidationError`` ("Expected `int` >= 1 - at
`$.pool_size`") into a :class:`ConfigError` that starts with the dotted key at
fault (``database.pool_size: expected a positive integer``). The text after the
key is the ``message`` in the ``Meta(extra=...)`` of the type at fault, so the
constrained types below carry theirs; a value never appears in it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta
from msgspec import inspect as types


class ConfigError(Exception):
    """Invalid configuration; the message names the source and key, e.g.
    'sources.acme.secrets[1]: environment variable ACME_SECRET_PREVIOUS is not set'.
    """


class FileTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A table of the file: an unknown key is refused (a typo, usually)."""


def says(message: str, *, missing: str = "missing", **constraints: Any) -> Meta:
    """``Meta`` with ``constraints`` whose violation reads ``KEY: message``;
    ``missing`` is what a required key's absence reads."""
    return Meta(**constraints, extra={"message": message, "missing": missing})


PositiveInt = Annotated[int, says("expected a positive integer", gt=0)]
PositiveNumber = Annotated[
    float, says("expected a positive number", gt=0, le=sys.float_info.max)
]
"""Finite and above zero (TOML has ``inf`` and ``nan``)."""
NonEmptyString = Annotated[str, says("expected a non-empty string", min_length=1)]
Flag = Annotated[bool, says("expected true or false")]
Table = Annotated[dict[str, Any], says("expected a table")]
T = TypeVar("T")

_ERROR = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(
    r"^Object (?P<kind>contains unknown|missing required) field `(?P<name>[^`]*)`$"
)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def from_env(
    reference: str, at: str, environ: Mapping[str, str], what: str = "secrets"
) -> str:
    """The value of the variable ``env:NAME`` names; a ``ConfigError`` at
    ``at`` for anything else (a value written in the file: ``what`` are
    never), or a variable that is not set or is empty. Never shows a value."""
    if not reference.startswith("env:"):
        raise ConfigError(f"{at}: {what} are never written in the file; use env:NAME")
    variable = reference.removeprefix("env:")
    if not variable:
        raise ConfigError(f"{at}: env: needs a variable name")
    if variable not in environ:
        raise ConfigError(f"{at}: environment variable {variable} is not set")
    if not environ[variable]:
        raise ConfigError(f"{at}: environment variable {variable} is empty")
    return environ[variable]


def decode(value: object, kind: type[T], where: str) -> T:
    """``value`` (a TOML table) as a ``kind``, or a ConfigError naming the key
    at fault below ``where`` (``sources.acme``; empty for the whole file)."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as error:
        raise ConfigError(explain(str(error), kind, where)) from None


def explain(error: str, kind: type, where: str) -> str:
    """msgspec's error text, as ours: the dotted key, then what is wrong."""
    parsed = _ERROR.match(error)
    assert parsed is not None  # the pattern matches any text
    what, path = parsed["what"], parsed["path"] or ""
    key = (where + path).lstrip(".")
    node = types.type_info(kind)
    for name, index in _STEP.findall(path):
        node = _child(_bare(node), name or index)
    table = _bare(node)
    field = _FIELD.match(what)
    if isinstance(table, types.StructType) and field is not None:
        name = field["name"]
        if field["kind"] == "missing required":
            missing = _extra(_child(table, name), "missing") or "missing"
            return f"{key}.{name}: {missing}"
        known = ", ".join(sorted(each.name for each in table.fields))
        if not key:
            return f"{name}: unknown table (allowed: {known})"
        return f"{key}.{name}: unknown key (known: {known})"
    if isinstance(table, types.StructType):
        return f"{key}: expected a table"
    return f"{key}: {_extra(node, 'message') or _without_values(what)}"


def _without_values(what: str) -> str:
    """msgspec's text for a type that carries no message of its own, without
    the quoted value some of its texts end with ("Invalid enum value 'x'"):
    the value may be a secret written where it should not be."""
    return re.sub(r" '.*'$", "", what[:1].lower() + what[1:], flags=re.DOTALL)


def _bare(node: types.Type) -> types.Type:
    """``node`` without its ``Meta`` and without ``| None``."""
    if isinstance(node, types.Metadata):
        return _bare(node.type)
    if isinstance(node, types.UnionType):
        others = [each for each in node.types if not isinstance(each, types.NoneType)]
        if len(others) == 1:
            return _bare(others[0])
    return node


def _child(node: types.Type, step: str) -> types.Type:
    """The type of field ``step`` of a Struct, or of an item of a list."""
    if isinstance(node, types.StructType):
        return next((f.type for f in node.fields if f.name == step), node)
    if isinstance(node, types.ListType | types.VarTupleType):
        return node.item_type
    if isinstance(node, types.DictType):
        return node.value_type
    return node


def _extra(node: types.Type, name: str) -> str | None:
    """``name`` in the ``Meta(extra=...)`` on ``node`` (or on its non-None half)."""
    if isinstance(node, types.UnionType):
        return next(filter(None, (_extra(each, name) for each in node.types)), None)
    if isinstance(node, types.Metadata) and node.extra:
        found = node.extra.get(name)
        return found if isinstance(found, str) else None
    return None
