"""``subject_keys`` on both backends: a subject's key is made once and kept
wrapped, erasing it is for good (and blocks a fresh key), and a master key
rotation rewraps every live key, resumably."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import Engine, select

from infrastructure.privacy.keys import MasterKey, open_field, seal_field
from infrastructure.privacy.store import (
    SUBJECT_KEYS,
    SubjectErased,
    SubjectKeys,
    customer_subject,
)

ADA = customer_subject("acme", "cus_1")
BOB = customer_subject("acme", "cus_2")


def test_a_subjects_key_is_made_once_and_stored_only_wrapped(engine: Engine) -> None:
    keys = SubjectKeys(engine, MasterKey(os.urandom(32)))
    key = keys.key_for(ADA)
    assert keys.key_for(ADA) == key and keys.key_for(BOB) != key
    with engine.connect() as conn:
        stored = {row.subject: row for row in conn.execute(select(SUBJECT_KEYS))}
    assert set(stored) == {ADA, BOB}
    assert key not in bytes(stored[ADA].wrapped_key)
    assert stored[ADA].master_key_id == keys.master.key_id
    assert stored[ADA].erased_at is None


def test_an_erased_subject_never_gets_a_key_again(engine: Engine) -> None:
    keys = SubjectKeys(engine, MasterKey(os.urandom(32)))
    sealed = seal_field(keys.key_for(ADA), "Ada Lovelace", ADA, "name")
    bob = keys.key_for(BOB)
    assert keys.erase(ADA) is True
    assert keys.erase(ADA) is False
    with pytest.raises(SubjectErased):
        keys.key_for(ADA)
    with engine.connect() as conn:
        row = conn.execute(
            select(SUBJECT_KEYS).where(SUBJECT_KEYS.c.subject == ADA)
        ).one()
    assert row.wrapped_key is None and row.erased_at is not None
    assert "Ada" not in sealed
    assert keys.key_for(BOB) == bob, "the others' keys are untouched"
    never_seen = customer_subject("acme", "cus_3")
    assert keys.erase(never_seen) is True
    with pytest.raises(SubjectErased):
        keys.key_for(never_seen)


def test_a_master_key_rotation_rewraps_every_live_key_and_can_resume(
    engine: Engine,
) -> None:
    old, new = MasterKey(os.urandom(32)), MasterKey(os.urandom(32))
    before = SubjectKeys(engine, old)
    subjects = [customer_subject("acme", f"cus_{n}") for n in range(7)]
    data_keys = {s: before.key_for(s) for s in subjects}
    sealed = seal_field(data_keys[subjects[0]], "ada@example.com", subjects[0], "email")
    before.erase(subjects[6])
    after = SubjectKeys(engine, new)
    with pytest.raises(ValueError, match="finish the rotation"):
        after.key_for(subjects[0])
    assert after.rewrap(old, batch=2) == 6
    assert after.rewrap(old, batch=2) == 0, "run again: nothing left"
    for subject in subjects[:6]:
        assert after.key_for(subject) == data_keys[subject]
    key = after.key_for(subjects[0])
    assert open_field(key, sealed, subjects[0], "email") == "ada@example.com"
    with pytest.raises(SubjectErased):
        after.key_for(subjects[6])
