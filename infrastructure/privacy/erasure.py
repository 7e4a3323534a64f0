"""Erasure of a customer's personal data: ``idemsync erase customer``,
``POST /admin/customers/{id}/erase`` and Shopify's ``customers/redact``.

In this order, each step safe to run again (an interrupted erasure is
finished by asking for it again):

1. the values the customer has now are read, to find the raw deliveries
   that carry them;
2. ``Erased`` is recorded on the customer (who, why; never a value): it is
   deleted, its fields cleared, and whatever a partner sends about it later
   is refused (``Customer.erase``); what was parked on it (a deletion
   that arrived before it was created) is discarded, as an erased customer
   is never created;
3. its data key is destroyed: every sealed copy of its fields, in events,
   snapshots and backups, reads as erased from now on;
4. its raw deliveries are redacted, keeping their digests
   (``infrastructure.privacy.redaction``);
5. its snapshots are dropped (a snapshot is a cache; those written before
   a master key was set hold the fields in clear) and its read-model row
   loses its fields now, before the projection catches up with ``Erased``.

What cannot be erased is counted, not hidden: events that hold its fields
in clear because they were stored before a master key was set.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, text

from domain.application import SyncService
from domain.commands import CUSTOMER_FIELDS
from domain.customer import Customer
from domain.errors import AlreadyErased, NotParked
from domain.namespaces import object_uuid
from domain.personal import ERASED
from infrastructure.persistence.ledger import stored_id
from infrastructure.privacy.keys import is_sealed
from infrastructure.privacy.redaction import redact_deliveries, subject_deliveries
from infrastructure.privacy.store import SubjectKeys, customer_subject

SEARCHED_FIELDS = ("email", "phone")
"""The fields whose text is looked for in raw payloads beyond those linked
to the customer (a name is not: another person may share it)."""


class NoSuchNamespace(LookupError):
    """No configured source writes into the namespace an erasure names."""


@dataclass(frozen=True)
class Erasure:
    """What one erasure did (the CLI prints it; the endpoint answers it)."""

    namespace: str
    customer_id: str
    subject: str
    recorded: bool
    """False when ``Erased`` was recorded by an earlier request."""
    version: int
    key_destroyed: bool
    """False without a master key, or when an earlier request destroyed it."""
    deliveries_redacted: int
    snapshots_dropped: int
    clear_events: int
    """Events of the customer holding personal fields in clear (stored
    before a master key was set): the erasure cannot make them unreadable."""

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class Eraser:
    """Carries out erasures on ``engine``'s database; ``keys``: None when
    no master key is set (fields are stored in clear)."""

    def __init__(
        self,
        service: SyncService,
        engine: Engine,
        keys: SubjectKeys | None,
        sources: Mapping[str, Collection[str]],
    ) -> None:
        """``sources``: the names of the sources of each namespace, whose
        raw deliveries may carry the customer's data."""
        self.service = service
        self.engine = engine
        self.keys = keys
        self.sources = sources

    def namespace_for(self, given: str | None) -> str:
        """The namespace an erasure asked for, or the only one the sources
        write into; ``ValueError`` naming them when there are several,
        ``NoSuchNamespace`` for one no source writes into."""
        known = ", ".join(sorted(self.sources)) or "no namespace"
        if given is None:
            if len(self.sources) != 1:
                raise ValueError(
                    f"namespace is required: the sources write into {known}"
                )
            (only,) = self.sources
            return only
        if given not in self.sources:
            raise NoSuchNamespace(
                f"no source writes into namespace {given!r} ({known})"
            )
        return given

    def erase(self, namespace: str, customer_id: str, by: str, reason: str) -> Erasure:
        needles = self._needles(namespace, customer_id)
        try:
            customer = self.service.erase_customer(customer_id, namespace, by, reason)
            recorded = True
        except AlreadyErased:
            found = self.service.find(Customer.kind, customer_id, namespace)
            assert isinstance(found, Customer)
            customer, recorded = found, False
        if self._discard_parked(customer, by):
            customer = cast(
                Customer, self.service.find(Customer.kind, customer_id, namespace)
            )
        subject = customer_subject(namespace, customer_id)
        destroyed = self.keys.erase(subject) if self.keys is not None else False
        at = datetime.now(UTC)
        pairs = subject_deliveries(
            self.engine,
            namespace,
            customer_id,
            self.sources.get(namespace, ()),
            needles,
        )
        redacted = redact_deliveries(self.engine, pairs, at)
        aggregate_id = object_uuid(Customer.kind, namespace, customer_id)
        dropped = self._drop_snapshots(aggregate_id)
        self._clear_read_model(namespace, customer_id)
        return Erasure(
            namespace=namespace,
            customer_id=customer_id,
            subject=subject,
            recorded=recorded,
            version=customer.version,
            key_destroyed=destroyed,
            deliveries_redacted=redacted,
            snapshots_dropped=dropped,
            clear_events=self._clear_events(aggregate_id),
        )

    def _discard_parked(self, customer: Customer, by: str) -> int:
        """Discard what waits on the customer (a deletion or a redact
        request that arrived before it was created): an erased customer is
        never created, so it would wait for ever. How many were."""
        waiting = dict.fromkeys((p["source"], p["key"]) for p in customer.parked)
        for source, key in waiting:
            with contextlib.suppress(NotParked):
                self.service.discard_parked(source, key, by, "the customer was erased")
        return len(waiting)

    def _needles(self, namespace: str, customer_id: str) -> list[str]:
        """The customer's searchable values as they read now (before its key
        goes)."""
        customer = self.service.find(Customer.kind, customer_id, namespace)
        if customer is None:
            return []
        values = [customer.values.get(field) for field in SEARCHED_FIELDS]
        return [v for v in values if isinstance(v, str) and len(v) >= 5 and v != ERASED]

    def _drop_snapshots(self, aggregate_id: uuid.UUID) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                text("DELETE FROM idemsync_snapshots WHERE originator_id = :id"),
                {"id": stored_id(self.engine.dialect.name, aggregate_id)},
            ).rowcount

    def _clear_read_model(self, namespace: str, customer_id: str) -> None:
        cleared = ", ".join(f"{field} = NULL" for field in CUSTOMER_FIELDS)
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    f"UPDATE customers SET {cleared} "
                    "WHERE namespace = :namespace AND customer_id = :id"
                ),
                {"namespace": namespace, "id": customer_id},
            )

    def _clear_events(self, aggregate_id: uuid.UUID) -> int:
        stored = self.service.recorder.select_events(aggregate_id)
        return sum(1 for event in stored if _holds_clear_fields(event.state))


def _holds_clear_fields(state: bytes) -> bool:
    """Whether a stored customer event states a personal field in clear."""
    stated = json.loads(state)
    places = [stated.get("changes"), stated.get("command")]
    command = stated.get("command")
    if isinstance(command, dict):
        places.append(command.get("fields"))
    return any(
        isinstance(place, dict)
        and any(
            place.get(field) not in (None, ERASED) and not is_sealed(place[field])
            for field in CUSTOMER_FIELDS
        )
        for place in places
    )
