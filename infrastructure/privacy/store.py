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
from collections.abc import Callable
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
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domain.namespaces import object_uuid
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

    def existing_key(self, subject: str) -> bytes | None:
        """The subject's data key; None when it has none (never made, or
        erased)."""
        row = self._row(subject)
        return None if row is None or row.wrapped_key is None else self._unwrap(row)

    def key_for(self, subject: str) -> bytes:
        """The subject's data key, made (and stored) on first use;
        ``SubjectErased`` once it was erased."""
        row = self._row(subject)
        if row is None:
            fresh = {
                "subject": subject,
                "master_key_id": self.master.key_id,
                "wrapped_key": self.master.wrap(new_data_key(), subject),
                "created_at": iso(self.now()),
            }
            postgres = self.engine.dialect.name == "postgresql"
            insert = pg_insert if postgres else sqlite_insert
            with self.engine.begin() as conn:
                conn.execute(
                    insert(SUBJECT_KEYS).values(fresh).on_conflict_do_nothing()
                )
                row = conn.execute(
                    select(SUBJECT_KEYS).where(SUBJECT_KEYS.c.subject == subject)
                ).one()
        if row.wrapped_key is None:
            raise SubjectErased(f"{subject} was erased at {row.erased_at}")
        return self._unwrap(row)

    def _row(self, subject: str) -> Row[Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(SUBJECT_KEYS).where(SUBJECT_KEYS.c.subject == subject)
            ).first()

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
