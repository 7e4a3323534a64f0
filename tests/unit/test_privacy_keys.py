"""Sealing a personal field with its subject's data key, and wrapping data
keys with the master key: what opens, and what must not."""

from __future__ import annotations

import base64
import os

import pytest

from infrastructure.privacy.keys import (
    SEALED,
    DoesNotOpen,
    MasterKey,
    is_sealed,
    new_data_key,
    open_field,
    seal_field,
)

SUBJECT = "acme/customer/cus_1"


def test_a_sealed_field_opens_with_its_key_subject_and_field_only() -> None:
    key = new_data_key()
    sealed = seal_field(key, "ada@example.com", SUBJECT, "email")
    assert is_sealed(sealed) and sealed.startswith(SEALED)
    assert "ada" not in sealed
    assert open_field(key, sealed, SUBJECT, "email") == "ada@example.com"
    assert seal_field(key, "ada@example.com", SUBJECT, "email") != sealed, "nonce"
    for wrong in (
        (new_data_key(), SUBJECT, "email"),
        (key, "acme/customer/cus_2", "email"),
        (key, SUBJECT, "name"),
    ):
        with pytest.raises(DoesNotOpen):
            open_field(wrong[0], sealed, wrong[1], wrong[2])


def test_a_tampered_sealed_field_does_not_open() -> None:
    key = new_data_key()
    raw = bytearray(base64.b64decode(seal_field(key, "x", SUBJECT, "name")[7:]))
    raw[-1] ^= 1
    with pytest.raises(DoesNotOpen):
        open_field(key, SEALED + base64.b64encode(bytes(raw)).decode(), SUBJECT, "name")
    with pytest.raises(DoesNotOpen):
        open_field(key, "plain text", SUBJECT, "name")


def test_a_data_key_is_wrapped_for_its_subject_by_the_master_key() -> None:
    master = MasterKey(os.urandom(32))
    data_key = new_data_key()
    wrapped = master.wrap(data_key, SUBJECT)
    assert data_key not in wrapped
    assert master.unwrap(wrapped, SUBJECT) == data_key
    with pytest.raises(DoesNotOpen):
        master.unwrap(wrapped, "acme/customer/cus_2")
    with pytest.raises(DoesNotOpen):
        MasterKey(os.urandom(32)).unwrap(wrapped, SUBJECT)


def test_a_master_key_is_the_base64_of_32_bytes_and_has_a_stable_id() -> None:
    text = base64.b64encode(bytes(range(32))).decode()
    master = MasterKey.from_text(text)
    assert master.key_id == MasterKey.from_text(text + "\n").key_id
    assert len(master.key_id) == 16
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            MasterKey.from_text(bad)
