"""A mapping as it was before a fix, for the replay tests: the ``standard``
mapping without ``order.refunded`` (answered ``ignored``, the payload kept).
Configured as ``mapping = "tests.replay_mappings:map_without_refunds"``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain.commands import Command, Ignored
from infrastructure.mappings.standard import map_standard


def map_without_refunds(
    body: bytes, headers: Mapping[str, str]
) -> Sequence[Command] | Ignored:
    mapped = map_standard(body, headers)
    if not isinstance(mapped, Ignored) and any(
        command.type == "order.refunded" for command in mapped
    ):
        return Ignored("no mapping for type 'order.refunded'")
    return mapped
