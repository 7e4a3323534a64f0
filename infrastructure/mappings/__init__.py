"""Payload mappings: a verified payload in, domain commands out.

A mapping is a function ``(body: bytes, headers) -> Sequence[Command] |
Ignored`` that raises ``InvalidPayload`` (naming the field path) for a payload
it cannot read. ``standard``, ``stripe``, ``shopify`` and ``github`` are built in; any
``package.module:function`` with that signature can be configured per source.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Annotated

import msgspec
from msgspec import Meta

from domain.commands import Command, Ignored

NO_NUL = "^[^\x00]*$"
"""A pattern for every text field: PostgreSQL text cannot hold NUL."""
ObjectId = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Text = Annotated[str, Meta(max_length=1000, pattern=NO_NUL)]

BUILT_IN = ("standard", "stripe", "shopify", "github")
"""The mappings named by a word; any other is ``package.module:function``."""

PayloadMapping = Callable[[bytes, Mapping[str, str]], Sequence[Command] | Ignored]


class InvalidPayload(Exception):
    """The body is not JSON or does not fit the schema; ``path`` names the
    field (``$.data.total_cents``), ``$`` for the whole body."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    @staticmethod
    def from_msgspec(error: Exception) -> InvalidPayload:
        """msgspec says ``Expected `int`, got `str` - at `$.data.total_cents```."""
        message = str(error)
        found = re.search(r" - at `([^`]*)`$", message)
        if found is None:
            return InvalidPayload(message)
        return InvalidPayload(message[: found.start()], found.group(1))


@contextmanager
def decoding() -> Iterator[None]:
    """Turn every way msgspec can refuse a body into ``InvalidPayload``."""
    try:
        yield
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise InvalidPayload.from_msgspec(error) from error
    except RecursionError as error:
        raise InvalidPayload("JSON is nested too deeply") from error
    except UnicodeDecodeError as error:
        raise InvalidPayload(f"body is not valid UTF-8: {error.reason}") from error


ErasureRequests = Callable[[bytes, Mapping[str, str]], list[str]]
"""The customers a delivery asks to erase (a partner's compliance topic)."""


def load_erasures(name: str) -> ErasureRequests | None:
    """What finds erasure requests in the deliveries of mapping ``name``:
    Shopify's ``customers/redact``; None for the mappings without one."""
    if name == "shopify":
        from infrastructure.mappings.shopify import erasures_requested

        return erasures_requested
    return None


def load_mapping(name: str) -> PayloadMapping:
    """The built-in mapping ``name``, or the function ``package.module:function``;
    either first refuses a body that is not UTF-8 or repeats a JSON key
    (``infrastructure.mappings.strict_json``)."""
    from infrastructure.mappings.strict_json import strict

    if name == "standard":
        from infrastructure.mappings.standard import map_standard

        return strict(map_standard)
    if name == "stripe":
        from infrastructure.mappings.stripe import map_stripe

        return strict(map_stripe)
    if name == "shopify":
        from infrastructure.mappings.shopify import map_shopify

        return strict(map_shopify)
    if name == "github":
        from infrastructure.mappings.github import map_github

        return strict(map_github)
    module_name, _, function_name = name.partition(":")
    if not function_name:
        raise ValueError(
            f"unknown mapping {name!r}: use one of {', '.join(BUILT_IN)} "
            "or 'package.module:function'"
        )
    function: PayloadMapping = getattr(
        importlib.import_module(module_name), function_name
    )
    return strict(function)
