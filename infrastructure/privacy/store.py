"""``subject_keys``: each data subject's key, wrapped by the master key
(``infrastructure.privacy.keys``), or the time it was erased.

A subject is named ``<type>/<object uuid>`` (``subject_name``): the id of
the object's aggregate, derived from its namespace, type and id
(``domain.namespaces.object_uuid``), which every stored event and snapshot
of it carries. Its key is made on first use. Erasing it keeps the row with
``wrapped_key`` NULL and ``erased_at`` set, so that a later delivery about
the same subject never gets a fresh key: whatever it carries can no longer
be stored readable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    LargeBinary,
    MetaData,
    Row,
    Table,
    Text,
    select,
    text,
    update,
)

from domain.namespaces import object_uuid
from infrastructure.persistence.database import insert
from infrastructure.persistence.ledger import iso
from infrastructure.privacy.keys import MasterKey, new_data_key

SUBJECT_KEYS = Table(
    "subject_keys",
    MetaData(),
    Column("subject", Text, primary_key=True),
    Column("master_key_id", Text, nullable=False),
    Column("wrapped_key", LargeBinary),
    Column("created_at", Text, nullable=False),
    Column("erased_at", Text),
)
"""Times are ISO 8601 text in UTC on both backends (as the ledger's)."""


def subject_name(kind: str, aggregate_id: uuid.UUID) -> str:
    return f"{kind}/{aggregate_id}"


def customer_subject(namespace: str, customer_id: str) -> str:
    """The data subject that is the customer ``customer_id`` of ``namespace``."""
    return subject_name("customer", object_uuid("customer", namespace, customer_id))


KEYS_PER_READ = 500
SEALING_KEYS = 10_000
"""Keys ``SubjectKeys.key_for`` keeps in a process: 320 KB."""


class SubjectErased(Exception):
    """The subject's key was erased: nothing about it can be stored readable."""


class SubjectKeys:
    """The subjects' keys in ``engine``'s database, under ``master``."""

    def __init__(
        self,
        engine: Engine,
        master: MasterKey,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.master = master
        self.now = now
        self._sealing: dict[str, bytes] = {}
        """The keys ``key_for`` gave, for sealing only (see there)."""

    def existing_keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        """The data keys of those of ``subjects`` that have one, read in one
        statement per ``KEYS_PER_READ``; never a kept key (``key_for``)."""
        wanted, found = sorted(subjects), dict[str, bytes]()
        for start in range(0, len(wanted), KEYS_PER_READ):
            chunk = wanted[start : start + KEYS_PER_READ]
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(SUBJECT_KEYS).where(
                        SUBJECT_KEYS.c.subject.in_(chunk),
                        SUBJECT_KEYS.c.wrapped_key.is_not(None),
                    )
                ).all()
            found.update((row.subject, self._unwrap(row)) for row in rows)
        return found

    def key_for(self, subject: str) -> bytes:
        """The subject's data key to seal with, made (and stored) on first
        use; ``SubjectErased`` once it was erased.

        Kept in this process once read (``SEALING_KEYS`` at most), unlike
        ``existing_key``: sealing with a key another process has since
        erased stores nothing readable, as the key is gone, and the domain
        refuses what a partner sends about an erased customer anyway (its
        ``Erased`` event conflicts with, or precedes, any concurrent write)."""
        known = self._sealing.get(subject)
        if known is not None:
            return known
        row = self._stored(subject)
        if row.wrapped_key is None:
            raise SubjectErased(f"{subject} was erased at {row.erased_at}")
        key = self._unwrap(row)
        if len(self._sealing) >= SEALING_KEYS:
            self._sealing.clear()
        self._sealing[subject] = key
        return key

    def _stored(self, subject: str) -> Row[Any]:
        """The subject's row, made with a new key if there was none: one
        statement (an insert that, on conflict, returns the row there). On
        PostgreSQL the transaction does not wait for its WAL to reach the
        disk (``synchronous_commit`` off, this transaction only): what is
        sealed with the key commits after it, synchronously, and a commit
        flushes all the WAL before it, so the key is on disk before anything
        that needs it; a key whose events never commit may be lost, and is
        not needed."""
        fresh = {
            "subject": subject,
            "master_key_id": self.master.key_id,
            "wrapped_key": self.master.wrap(new_data_key(), subject),
            "created_at": iso(self.now()),
        }
        with self.engine.begin() as conn:
            statement = insert(conn, SUBJECT_KEYS).values(fresh)
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL synchronous_commit = off"))
            return conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[SUBJECT_KEYS.c.subject],
                    set_={"subject": statement.excluded.subject},
                ).returning(*SUBJECT_KEYS.c)
            ).one()

    def _unwrap(self, row: Row[Any]) -> bytes:
        if row.master_key_id != self.master.key_id:
            raise ValueError(
                f"{row.subject}'s key is wrapped by master key "
                f"{row.master_key_id}, not {self.master.key_id}: finish the "
                "rotation (idemsync keys rotate)"
            )
        return self.master.unwrap(bytes(row.wrapped_key), row.subject)

    def erase(self, subject: str) -> bool:
        """Destroy the subject's key (crypto-shredding); False when it was
        erased already. A subject never seen is recorded as erased."""
        at = iso(self.now())
        self._sealing.pop(subject, None)
        with self.engine.begin() as conn:
            erased = conn.execute(
                update(SUBJECT_KEYS)
                .where(
                    SUBJECT_KEYS.c.subject == subject,
                    SUBJECT_KEYS.c.wrapped_key.is_not(None),
                )
                .values(wrapped_key=None, erased_at=at)
            ).rowcount
            if erased:
                return True
            known = conn.execute(
                select(SUBJECT_KEYS.c.subject).where(SUBJECT_KEYS.c.subject == subject)
            ).first()
            if known is not None:
                return False
            conn.execute(
                SUBJECT_KEYS.insert().values(
                    subject=subject,
                    master_key_id=self.master.key_id,
                    wrapped_key=None,
                    created_at=at,
                    erased_at=at,
                )
            )
            return True

    def rewrap(self, old: MasterKey, batch: int = 500) -> int:
        """Wrap with this master every key ``old`` wraps (master key
        rotation); how many were rewrapped. Safe to run again after an
        interruption: a row already rewrapped is not ``old``'s any more."""
        done = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(SUBJECT_KEYS.c.subject, SUBJECT_KEYS.c.wrapped_key)
                    .where(
                        SUBJECT_KEYS.c.master_key_id == old.key_id,
                        SUBJECT_KEYS.c.wrapped_key.is_not(None),
                    )
                    .limit(batch)
                ).all()
                for subject, wrapped in rows:
                    key = old.unwrap(bytes(wrapped), subject)
                    conn.execute(
                        update(SUBJECT_KEYS)
                        .where(
                            SUBJECT_KEYS.c.subject == subject,
                            SUBJECT_KEYS.c.master_key_id == old.key_id,
                        )
                        .values(
                            master_key_id=self.master.key_id,
                            wrapped_key=self.master.wrap(key, subject),
                        )
                    )
            done += len(rows)
            if len(rows) < batch:
                return done
