"""Decoding tables into Structs: msgspec's errors, translated (config_fields.py)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import inspect as types

from infrastructure.access import TokenTable
from infrastructure.config_fields import ConfigError, FileTable, decode
from infrastructure.config_tables import ConfigFile
from infrastructure.source_table import SourceTable


def leaves(node: types.Type, where: str) -> list[tuple[str, types.Type]]:
    """Every value a table holds, with its dotted key (items as ``[]``)."""
    if isinstance(node, types.UnionType):
        kept = [each for each in node.types if not isinstance(each, types.NoneType)]
        return [leaf for each in kept for leaf in leaves(each, where)]
    inner = node.type if isinstance(node, types.Metadata) else node
    if isinstance(inner, types.StructType):
        return [
            leaf
            for field in inner.fields
            for leaf in leaves(field.type, f"{where}.{field.name}")
        ]
    found = [(where, node)]
    if isinstance(inner, types.ListType | types.VarTupleType):
        found += leaves(inner.item_type, f"{where}[]")
    return found


@pytest.mark.parametrize("table", [ConfigFile, SourceTable, TokenTable])
def test_every_key_of_every_table_says_what_it_expects(table: type) -> None:
    """A key whose type has no ``says(...)`` would fall back to msgspec's
    wording; each one has its own."""
    silent = [
        where
        for where, node in leaves(types.type_info(table), table.__name__)
        if not (isinstance(node, types.Metadata) and node.extra)
    ]
    assert silent == []


class Loose(FileTable, frozen=True):
    colour: Literal["red", "blue"] = "red"
    size: Annotated[int, msgspec.Meta(gt=0)] = 1


def test_a_type_without_a_message_still_never_echoes_the_value() -> None:
    with pytest.raises(ConfigError) as refused:
        decode({"colour": "whsec_not-a-colour"}, Loose, "paint")
    assert str(refused.value).startswith("paint.colour: ")
    assert "whsec_" not in str(refused.value)


def test_msgspec_paths_become_dotted_keys_below_the_table() -> None:
    with pytest.raises(ConfigError) as refused:
        decode({"size": 0}, Loose, "sources.acme")
    assert str(refused.value).startswith("sources.acme.size: expected `int` >= 1")
    with pytest.raises(ConfigError) as refused:
        decode({"shape": "round"}, Loose, "paint")
    assert str(refused.value) == "paint.shape: unknown key (known: colour, size)"
