"""What every mapping, built in or a plugin, gets refused before it maps
anything (400 ``invalid_payload``, nothing stored, the same on every retry):

- a body that is not UTF-8 (RFC 8259 requires it), wherever the bad bytes
  are: msgspec checks the strings it decodes, not the fields it skips, so a
  bad byte in an unknown field would otherwise be stored and acknowledged;
- a JSON body that names one key twice in an object. RFC 8259 leaves a
  repeated name's meaning to the parser: msgspec keeps the last value, other
  parsers the first, and msgspec's tagged union reads a repeated ``type``
  unlike a plain decode. A signed body that two readers (the partner's, ours,
  an auditor's) may read as two different deliveries is refused rather than
  read one way.

A body that is not JSON, or too deep to parse here, is left to the mapping,
which refuses it with its own message (or reads it, if it is not JSON).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from domain.commands import Command, Ignored
from infrastructure.mappings import InvalidPayload, PayloadMapping


class _Repeated(dict[str, Any]):
    """A decoded object that had ``name`` more than once."""

    name = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    repeated = _Repeated(value)
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            repeated.name = name
            break
        seen.add(name)
    return repeated


def _ignore(text: str) -> int:
    """Numbers are not needed to find a repeated name (and a 5,000-digit one
    would exceed Python's int limit here: the mapping judges numbers)."""
    return 0


def duplicate_key(text: str | bytes) -> tuple[str, str] | None:
    """The path of the first object (in document order) that repeats a name,
    and that name, when ``text`` is JSON that has one; else None."""
    repeats = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeats
        value = _object(pairs)
        repeats = repeats or isinstance(value, _Repeated)
        return value

    try:
        value = json.loads(
            text,
            object_pairs_hook=hook,
            parse_int=_ignore,
            parse_float=_ignore,
            parse_constant=_ignore,
        )
    except (ValueError, RecursionError):  # not JSON, or too deep
        return None
    stack: list[tuple[str, Any]] = [("$", value)] if repeats else []
    while stack:  # depth first, without recursion
        path, node = stack.pop()
        if isinstance(node, _Repeated):
            return path, node.name
        if isinstance(node, dict):
            children = [(f"{path}.{name}", item) for name, item in node.items()]
        elif isinstance(node, list):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def refuse_unreadable(body: bytes) -> None:
    """Raise ``InvalidPayload`` if ``body`` is not UTF-8, or is JSON with a
    repeated key (the path names it)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidPayload(
            f"body is not valid UTF-8: {error.reason} at byte {error.start}"
        ) from None
    found = duplicate_key(text)
    if found is not None:
        path, name = found
        raise InvalidPayload(
            f"duplicate key {name!r}: an object names it more than once",
            f"{path}.{name}",
        )


def strict(mapping: PayloadMapping) -> PayloadMapping:
    """``mapping``, refusing an unreadable body first."""

    @functools.wraps(mapping)  # inspect.unwrap gives ``mapping`` back
    def mapped(body: bytes, headers: Mapping[str, str]) -> Sequence[Command] | Ignored:
        refuse_unreadable(body)
        return mapping(body, headers)

    return mapped
