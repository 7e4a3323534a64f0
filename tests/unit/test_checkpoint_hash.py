"""The checkpoint hash: the previous checkpoint's hash, then each ledger row's
notification id and hash, in fixed widths. Any change of any input byte
changes it; the streaming digest and the one-call form agree."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infrastructure.audit.checkpoints import CheckpointDigest, checkpoint_hash
from infrastructure.persistence.ledger import GENESIS

hashes = st.binary(min_size=32, max_size=32)
rows = st.lists(
    st.tuples(st.integers(min_value=1, max_value=2**63 - 1), hashes), max_size=8
)


def as_bytes(previous: bytes, entries: list[tuple[int, bytes]]) -> bytearray:
    """Every input byte, in the order they are hashed."""
    data = bytearray(previous)
    for notification_id, row_hash in entries:
        data += notification_id.to_bytes(8, "big") + row_hash
    return data


def from_bytes(data: bytearray, count: int) -> tuple[bytes, list[tuple[int, bytes]]]:
    previous, rest = bytes(data[:32]), data[32:]
    entries = []
    for index in range(count):
        chunk = rest[index * 40 : (index + 1) * 40]
        entries.append((int.from_bytes(chunk[:8], "big"), bytes(chunk[8:])))
    return previous, entries


def test_the_first_checkpoint_of_no_rows_is_the_hash_of_genesis() -> None:
    assert checkpoint_hash(GENESIS, []) == hashlib.sha256(GENESIS).digest()


def test_the_hash_is_sha256_of_the_previous_hash_then_each_id_and_row_hash() -> None:
    first, second = bytes(range(32)), bytes(range(32, 64))
    expected = hashlib.sha256(
        GENESIS + (7).to_bytes(8, "big") + first + (9).to_bytes(8, "big") + second
    ).digest()
    assert checkpoint_hash(GENESIS, [(7, first), (9, second)]) == expected


@given(previous=hashes, entries=rows, data=st.data())
def test_changing_any_byte_of_any_input_changes_the_checkpoint_hash(
    previous: bytes, entries: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    original = checkpoint_hash(previous, entries)
    raw = as_bytes(previous, entries)
    position = data.draw(st.integers(0, len(raw) - 1), label="byte")
    flip = data.draw(st.integers(1, 255), label="xor")
    raw[position] ^= flip
    changed_previous, changed_entries = from_bytes(raw, len(entries))
    assert (changed_previous, changed_entries) != (previous, entries)
    assert checkpoint_hash(changed_previous, changed_entries) != original


@given(previous=hashes, entries=rows, extra=st.tuples(st.integers(1, 2**40), hashes))
def test_adding_or_dropping_a_row_changes_the_checkpoint_hash(
    previous: bytes, entries: list[tuple[int, bytes]], extra: tuple[int, bytes]
) -> None:
    original = checkpoint_hash(previous, entries)
    assert checkpoint_hash(previous, [*entries, extra]) != original
    if entries:
        assert checkpoint_hash(previous, entries[:-1]) != original


@given(previous=hashes, entries=rows)
def test_the_streaming_digest_counts_rows_and_agrees_with_the_one_call_form(
    previous: bytes, entries: list[tuple[int, bytes]]
) -> None:
    digest = CheckpointDigest(previous)
    for notification_id, row_hash in entries:
        digest.add(notification_id, row_hash)
    assert digest.events == len(entries)
    assert digest.digest() == checkpoint_hash(previous, entries)


def test_a_hash_that_is_not_32_bytes_is_refused() -> None:
    with pytest.raises(ValueError):
        checkpoint_hash(bytes(31), [])
    with pytest.raises(ValueError):
        checkpoint_hash(GENESIS, [(1, bytes(33))])
