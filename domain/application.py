"""The service layer: decide a delivery's commands and record the answer.

``SyncService.receive`` is the whole life of a delivery once it is verified
and mapped: find its first answer (duplicate), else load the objects it
addresses, let them decide, and commit the delivery record and the new
events in one transaction. A concurrent writer that got there first makes the
commit fail with an ``IntegrityError``; the delivery is then decided again on
fresh state, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    Recording,
)
from eventsourcing.domain import (
    Aggregate,
    DomainEventProtocol,
    MutableOrImmutableAggregate,
)
from eventsourcing.persistence import IntegrityError, Mapper

from domain.commands import Command, Ignored, OrderCommand
from domain.customer import Customer
from domain.delivery import (
    Answer,
    Ask,
    Delivery,
    DeliveryLog,
    DeliveryRecord,
    FirstAnswer,
    ObjectRef,
    Outcome,
    Resolution,
)
from domain.errors import (
    AlreadyParked,
    IllegalTransition,
    NothingNewer,
    NotParked,
    NotYetCreated,
)
from domain.namespaces import DEFAULT_NAMESPACE
from domain.objects import SyncedObject
from domain.order import Order
from domain.payment import Payment
from domain.preload import Preloaded
from domain.provenance import Provenance
from domain.receipt import Receipt

AGGREGATES: dict[str, type[SyncedObject]] = {
    "order": Order,
    "customer": Customer,
    "payment": Payment,
}


@dataclass(frozen=True)
class Addressed:
    """Who asks (the delivery's source and key), where its commands find
    their objects (the namespace), and the objects its batch read before
    (``known``; None: each is read when first addressed)."""

    source: str
    key: str
    namespace: str
    known: Preloaded | None = None


Mapped = Sequence[Command] | Ignored
"""What a mapping makes of a payload: commands, or why none."""


class TooMuchContention(Exception):
    """A delivery lost every one of its attempts to concurrent writers."""


@dataclass(frozen=True)
class Decision:
    """A decided delivery, not yet committed: its record (with the answer),
    the new events of the objects and receipts it changed, where each event
    came from, and what became of the parked deliveries it released.

    The events are taken out of their aggregates when deciding, so that a
    commit that fails can be tried again with the same events (group commit
    retries part of a batch); the aggregates stay for snapshots."""

    record: DeliveryRecord
    events: tuple[DomainEventProtocol[uuid.UUID], ...]
    provenance: Mapping[tuple[uuid.UUID, int], Provenance]
    resolutions: tuple[Resolution, ...]
    aggregates: tuple[Aggregate, ...]

    @property
    def answer(self) -> Answer:
        return self.record.answer

    @property
    def aggregate_ids(self) -> frozenset[uuid.UUID]:
        """Every aggregate it appends to."""
        return frozenset(event.originator_id for event in self.events)

    @property
    def claims(self) -> frozenset[object]:
        """What only one commit may write: its aggregates (the receipt among
        them, named by the key) and its delivery's fingerprint. Two
        decisions that share a claim cannot commit together."""
        delivery = self.record.delivery
        if delivery.fingerprint is None:
            return self.aggregate_ids
        fingerprint = (delivery.source, delivery.fingerprint)
        return self.aggregate_ids | {fingerprint}

    @property
    def kinds(self) -> list[str]:
        """The types of the partner's objects it changes."""
        return [a.kind for a in self.aggregates if isinstance(a, SyncedObject)]


Commit = Callable[[Sequence[Decision]], None]
"""``SyncService.commit``: one transaction for the decisions given."""


@dataclass(eq=False)
class Pending:
    """A delivery waiting for its verdict (``SyncService.decide_batch``): its
    commands (or what decodes them, called once, when first needed) and how
    many of its decisions lost to a concurrent writer."""

    delivery: Delivery
    mapped: Mapped | Callable[[], Mapped]
    attempts: int = 0
    _commands: Mapped | None = None

    def commands(self) -> Mapped:
        if self._commands is None:
            self._commands = self.mapped() if callable(self.mapped) else self.mapped
        return self._commands

    @property
    def ask(self) -> Ask:
        delivery = self.delivery
        return Ask(delivery.source, delivery.key, delivery.fingerprint)

    @property
    def names(self) -> set[object]:
        """What names the delivery in the log: its key, and its fingerprint."""
        delivery = self.delivery
        names: set[object] = {("key", delivery.source, delivery.key)}
        if delivery.fingerprint is not None:
            names.add(("fingerprint", delivery.source, delivery.fingerprint))
        return names


class Deferred:
    """The verdict of a delivery to decide in the next batch."""


DEFERRED = Deferred()

Verdict = Answer | Decision | Deferred | Exception
"""What ``SyncService.decide_batch`` makes of one pending delivery."""


class Committer(Protocol):
    """Decides and commits a delivery, maybe together with others (group
    commit): the answer, a duplicate's included."""

    def submit(self, pending: Pending) -> Answer: ...


class SyncService(Application[uuid.UUID]):
    """Keeps partners' objects in sync, counting each delivery once."""

    name = "idemsync"
    max_attempts = 30
    snapshotting_intervals = dict.fromkeys((Order, Customer), 20)
    """Long histories: the library snapshots an object every 20 events, after
    they commit (docs/design.md, "Long histories")."""

    def take_snapshot(self, *args: Any, **kwargs: Any) -> None:
        """Called by ``save`` once the events committed: a snapshot is only a
        cache of them, so failing to take one is logged, never a failed save."""
        try:
            super().take_snapshot(*args, **kwargs)
        except Exception:
            logging.getLogger("idemsync").warning(
                "no snapshot taken of %s", args or kwargs, exc_info=True
            )

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        on_conflict: Callable[[str], None] | None = None,
        committer: Callable[[SyncService], Committer] | None = None,
        mapper: Callable[[Mapper[uuid.UUID]], Mapper[uuid.UUID]] | None = None,
    ) -> None:
        """``on_conflict`` hears the aggregate type of each commit lost to a
        concurrent writer (``delivery`` when the race was for the key).
        ``committer``: makes what commits deliveries together (the server's
        group commit) from this service's ``commit``; without it each
        delivery commits in its own transaction. ``mapper``: makes the
        mapper between events and stored events from the library's (the
        infrastructure's sealing of personal fields); without it, the
        library's."""
        self._make_mapper = mapper
        super().__init__(env)
        self.deliveries = cast(DeliveryLog, self.recorder)
        self.conflicts = 0
        self.on_conflict = on_conflict
        self.committer = None if committer is None else committer(self)

    def construct_mapper(self) -> Mapper[uuid.UUID]:
        mapper = super().construct_mapper()
        return mapper if self._make_mapper is None else self._make_mapper(mapper)

    def receive(
        self, delivery: Delivery, mapped: Mapped | Callable[[], Mapped]
    ) -> Answer:
        """Decide and record ``delivery``; the answer of a retry is the first one.

        ``mapped``: its commands, or what decodes them, called only when the
        delivery has no first answer (a retry is answered without decoding
        its body, and a body that no longer decodes cannot fail it). With a
        committer, the delivery is decided in its next batch; without, here,
        as a batch of one."""
        pending = Pending(delivery, mapped)
        if self.committer is not None:
            return self.committer.submit(pending)
        while pending.attempts < self.max_attempts:
            (verdict,) = self.decide_batch([pending])
            if isinstance(verdict, BaseException):
                raise verdict
            if isinstance(verdict, Answer):
                return verdict
            assert isinstance(verdict, Decision)
            try:
                self.commit([verdict])
            except IntegrityError:
                self.conflicted(verdict.kinds)
                self.back_off(pending.attempts)
                pending.attempts += 1
                continue
            return verdict.answer
        raise self.too_much_contention(delivery)

    def decide_batch(self, batch: Sequence[Pending]) -> list[Verdict]:
        """Decide several deliveries on what the store holds, nothing written:
        the first answers of all their keys in one query, the aggregates they
        address read together (``Preloaded``), each decided in turn.

        Each gets its own verdict: its duplicate ``Answer``, its ``Decision``
        to commit, ``DEFERRED`` when it shares a key, a fingerprint or an
        aggregate with one decided before it in this batch (decided on the
        same state, they would both append the same versions: it waits for
        the next batch, which reads what this one wrote), or the exception
        its decoding or deciding raised. A failure of the store while
        looking up the first answers fails the whole batch."""
        firsts = self.deliveries.find_answers([p.ask for p in batch])
        verdicts: list[Verdict] = [DEFERRED] * len(batch)
        names: set[object] = set()
        undecided: list[tuple[int, Pending]] = []
        for i, (pending, first) in enumerate(zip(batch, firsts, strict=True)):
            delivery = pending.delivery
            if first is None and pending.attempts:
                first = self.first_answer(
                    delivery.source,
                    delivery.key,
                    True,
                    fingerprint=delivery.fingerprint,
                )
            if first is not None:
                verdicts[i] = Answer.duplicate(delivery.source, delivery.key, first)
                continue
            if pending.names & names:
                continue
            names |= pending.names
            try:
                pending.commands()
            except Exception as error:
                verdicts[i] = error
                continue
            undecided.append((i, pending))
        known = Preloaded.read(
            self, {a for _, pending in undecided for a in self._addressed(pending)}
        )
        claimed: set[object] = set()
        for i, pending in undecided:
            try:
                decision = self.decide(pending.delivery, pending.commands(), known)
            except Exception as error:
                verdicts[i] = error
                continue
            if decision.claims & claimed:
                continue
            claimed |= decision.claims
            verdicts[i] = decision
        return verdicts

    @staticmethod
    def _addressed(pending: Pending) -> set[uuid.UUID]:
        """The ids of the objects ``pending``'s commands name directly (an
        order reached through a payment is read when the payment names it)."""
        mapped = pending.commands()
        if isinstance(mapped, Ignored):
            return set()
        namespace = pending.delivery.namespace
        ids = set()
        for command in mapped:
            if isinstance(command, OrderCommand) and command.via_payment is not None:
                ids.add(Payment.create_id(command.via_payment, namespace))
            else:
                cls = AGGREGATES[command.aggregate]
                ids.add(cls.create_id(command.object_id, namespace))
        return ids

    def replay(
        self,
        delivery: Delivery,
        mapped: Mapped,
        *,
        commit: bool = True,
    ) -> Answer | None:
        """Decide a recorded delivery again with today's mapping (after a
        mapping fix), on the objects as they are now.

        No duplicate check (its key is recorded) and no new receipt: its
        receipt is ``Resolved`` and its record gets the new resolution, with
        the new events, in one transaction (unless ``commit`` is false: a dry
        run). None when that would change nothing: the same outcome, or an
        applied delivery that appends nothing (its effect is there already; it
        is stale by position), so replaying twice is replaying once; None for
        a delivery an operator discarded (that was not the mapping's call).
        """
        receipt_id = Receipt.create_id(delivery.source, delivery.key)
        for attempt in range(self.max_attempts):
            receipt = cast(Receipt, self.repository.get(receipt_id))
            if receipt.discarded_by is not None:
                return None  # an operator dropped it: not the mapping's call
            answer, changed, resolutions, _ = self._decide(delivery, mapped, None)
            before = receipt.resolution or receipt.outcome
            if not changed and before in (answer.outcome, Outcome.APPLIED):
                return None
            if not commit:
                return answer
            own = Resolution(
                delivery.source, delivery.key, answer.outcome, answer.reason
            )
            receipt.resolve(own.outcome.value, own.reason)
            if self._resolved(receipt, own, changed, resolutions, attempt):
                return answer
        raise self.too_much_contention(delivery)

    def release_parked(self, source: str, key: str, by: str, reason: str) -> Resolution:
        """An operator (``by``) releases a parked delivery: its commands are
        decided now on their object, which must exist (else
        ``NotYetCreated``). Recorded as ``HandedOn`` on the object, the
        changes the commands make, and the delivery's ``Resolved``."""
        return self._settle_parked(source, key, by, reason, release=True)

    def discard_parked(self, source: str, key: str, by: str, reason: str) -> Resolution:
        """An operator (``by``) discards a parked delivery: it leaves the
        queue and is never applied. Recorded as ``Discarded`` on the object
        and the delivery's ``Resolved`` (``ignored``, with who and why)."""
        return self._settle_parked(source, key, by, reason, release=False)

    def _settle_parked(
        self, source: str, key: str, by: str, reason: str, *, release: bool
    ) -> Resolution:
        receipt_id = Receipt.create_id(source, key)
        for attempt in range(self.max_attempts):
            try:
                receipt = cast(Receipt, self.repository.get(receipt_id))
            except AggregateNotFoundError:
                raise NotParked(f"no delivery {key!r} from {source!r}") from None
            if receipt.outcome != Outcome.PARKED or receipt.resolution is not None:
                raise NotParked(
                    f"{key} was {receipt.resolution or receipt.outcome}, "
                    "it is not waiting"
                )
            objects: dict[uuid.UUID, SyncedObject] = {}
            resolutions: list[Resolution] = []
            holders = self._holders(receipt, source, key, objects)
            if release:
                results = [
                    self._execute(
                        command,
                        Addressed(source, key, holder.namespace, None),
                        objects,
                        resolutions,
                    )
                    for holder in holders
                    for command in holder.release_by_hand(source, key, by, reason)
                ]
                own = Resolution.per_delivery(
                    [Resolution(source, key, o, why) for o, why in results]
                )[0]
                receipt.resolve(own.outcome.value, own.reason)
            else:
                for holder in holders:
                    holder.discard(source, key, by, reason)
                why = f"discarded by {by}: {reason}"
                own = Resolution(source, key, Outcome.IGNORED, why)
                receipt.discard(own.outcome.value, why, by)
            changed = [o for o in objects.values() if o.pending_events]
            if self._resolved(receipt, own, changed, resolutions, attempt):
                return own
        raise TooMuchContention(f"{source}/{key}: {self.max_attempts} attempts")

    def _resolved(
        self,
        receipt: Receipt,
        own: Resolution,
        changed: Sequence[SyncedObject],
        resolutions: Sequence[Resolution],
        attempt: int,
    ) -> bool:
        """Save a delivery's new resolution (``own``, already on its
        ``receipt``; now on its record), the objects it ``changed`` and the
        parked deliveries that released, in one transaction; False (after
        backing off) when another writer got there first and the caller must
        decide again."""
        try:
            self.save(
                *changed,
                receipt,
                *self._resolved_receipts(resolutions),
                resolutions=[own, *resolutions],
            )
        except IntegrityError:
            self.conflicted([obj.kind for obj in changed])
            self.back_off(attempt)
            return False
        return True

    def _holders(
        self,
        receipt: Receipt,
        source: str,
        key: str,
        objects: dict[uuid.UUID, SyncedObject],
    ) -> list[SyncedObject]:
        """The objects the parked delivery's commands wait on (its answer
        names them), loaded into ``objects``."""
        answer = receipt.answer
        refs = answer.get("aggregates") or [answer.get("aggregate")]
        holders = []
        for ref in refs:
            if not ref or ref.get("type") not in AGGREGATES:
                continue
            namespace = ref.get("namespace", DEFAULT_NAMESPACE)
            obj = self.find(ref["type"], ref["id"], namespace)
            if obj is None or not any(
                (p["source"], p["key"]) == (source, key) for p in obj.parked
            ):
                continue
            objects[obj.id] = obj
            holders.append(obj)
        if not holders:
            raise NotParked(f"no object holds {key} any more")
        return holders

    def conflicted(self, kinds: Sequence[str]) -> None:
        """Count a lost race (of a decision changing objects of ``kinds``)."""
        self.conflicts += 1
        if self.on_conflict is not None:
            self.on_conflict(kinds[0] if kinds else "delivery")

    @staticmethod
    def back_off(attempt: int) -> None:
        """Wait a little (jittered, longer each attempt) before deciding again."""
        time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))

    def too_much_contention(self, delivery: Delivery) -> TooMuchContention:
        where = f"{delivery.source}/{delivery.key}"
        return TooMuchContention(f"{where}: {self.max_attempts} conflicting attempts")

    def first_answer(
        self,
        source: str,
        key: str,
        in_log: bool = False,
        *,
        fingerprint: str | None = None,
    ) -> FirstAnswer | None:
        """The first answer from the delivery log, by key, else by
        ``fingerprint`` (a re-sent capture under a fresh key); with
        ``in_log``, also from the receipt in the event log (after a conflict:
        the record may have been pruned). Fingerprints are never pruned."""
        first = self.deliveries.find_answer(source, key, fingerprint)
        if first is None and in_log:
            try:
                receipt: Aggregate = self.repository.get(Receipt.create_id(source, key))
            except AggregateNotFoundError:
                return None
            issued = cast(Receipt, receipt)
            return FirstAnswer(
                issued.answer, datetime.fromisoformat(issued.received_at)
            )
        return first

    def decide(
        self, delivery: Delivery, mapped: Mapped, known: Preloaded | None = None
    ) -> Decision:
        """Let each addressed object decide its command; nothing is written.
        ``known``: objects read before (a batch's), else each is read now."""
        answer, changed, resolutions, erased = self._decide(delivery, mapped, known)
        receipt = Receipt(
            source=delivery.source,
            key=delivery.key,
            outcome=answer.outcome.value,
            reason=answer.reason,
            answer=answer.to_json(),
            received_at=delivery.received_at.isoformat(),
        )
        aggregates: tuple[SyncedObject | Receipt, ...] = (
            *changed,
            receipt,
            *self._resolved_receipts(resolutions),
        )
        events, provenance = self._take_events(aggregates)
        return Decision(
            DeliveryRecord(delivery, answer, redacted=erased),
            events,
            provenance,
            resolutions,
            aggregates,
        )

    @staticmethod
    def _take_events(
        aggregates: Sequence[SyncedObject | Receipt],
    ) -> tuple[
        tuple[DomainEventProtocol[uuid.UUID], ...],
        dict[tuple[uuid.UUID, int], Provenance],
    ]:
        """The pending events of ``aggregates``, taken out of them, and where
        each came from."""
        events: list[DomainEventProtocol[uuid.UUID]] = []
        provenance: dict[tuple[uuid.UUID, int], Provenance] = {}
        for aggregate in aggregates:
            taken = aggregate.collect_events()
            events += taken
            provenance.update(_provenance(aggregate, taken))
        return tuple(events), provenance

    def _decide(
        self, delivery: Delivery, mapped: Mapped, known: Preloaded | None
    ) -> tuple[Answer, tuple[SyncedObject, ...], tuple[Resolution, ...], bool]:
        """The answer, the objects with new events, what became of the
        parked deliveries they released, and whether it addressed a customer
        whose personal data was erased (its payload is then not kept)."""
        source, key = delivery.source, delivery.key
        if isinstance(mapped, Ignored):
            ignored = Answer(Outcome.IGNORED, source, key, reason=mapped.reason)
            return ignored, (), (), False
        if not mapped:
            raise ValueError("a mapping returned no command; return Ignored instead")
        objects: dict[uuid.UUID, SyncedObject] = {}
        results: list[tuple[Outcome, str | None]] = []
        resolutions: list[Resolution] = []
        where = Addressed(source, key, delivery.namespace, known)
        for command in mapped:
            outcome, reason = self._execute(command, where, objects, resolutions)
            results.append((outcome, reason))
        refs = tuple(
            ObjectRef(o.kind, o.object_id, o.version, o.namespace)
            for o in objects.values()
        )
        answer = Answer.combine(source, key, results, refs)
        changed = tuple(o for o in objects.values() if o.pending_events)
        erased = any(isinstance(o, Customer) and o.erased for o in objects.values())
        return answer, changed, tuple(Resolution.per_delivery(resolutions)), erased

    def _execute(
        self,
        command: Command,
        where: Addressed,
        objects: dict[uuid.UUID, SyncedObject],
        resolutions: list[Resolution],
    ) -> tuple[Outcome, str | None]:
        """Let the object ``command`` addresses (in ``where``'s namespace)
        decide it (loaded once per decision, in ``objects``); the outcome and
        its reason. What became of parked deliveries it released goes to
        ``resolutions``."""
        source, key = where.source, where.key
        if isinstance(command, OrderCommand) and command.via_payment is not None:
            payment = cast(
                Payment, self._object(Payment, command.via_payment, where, objects)
            )
            if payment.order_id is None:
                with contextlib.suppress(AlreadyParked):
                    payment.park(command, source, key)
                return Outcome.PARKED, (
                    f"payment {command.via_payment} is not linked to an order yet; "
                    f"{command.type} waits for the link"
                )
            command = command.for_order(payment.order_id)
        obj = self._object(
            AGGREGATES[command.aggregate], command.object_id, where, objects
        )
        try:
            resolutions += obj.execute(command, source, key)
        except NotYetCreated as waiting:
            with contextlib.suppress(AlreadyParked):
                obj.park(command, source, key)
            return Outcome.PARKED, waiting.reason
        except NothingNewer as old:
            return Outcome.STALE, old.reason
        except IllegalTransition as illegal:
            return Outcome.REJECTED, illegal.reason
        if isinstance(obj, Payment) and obj.order_id is not None:
            for released, parked_source, parked_key in obj.forwarded():
                assert isinstance(released, OrderCommand)
                outcome, reason = self._execute(
                    released.for_order(obj.order_id),
                    Addressed(parked_source, parked_key, obj.namespace, where.known),
                    objects,
                    resolutions,
                )
                resolutions.append(
                    Resolution(parked_source, parked_key, outcome, reason)
                )
        return Outcome.APPLIED, None

    def _object(
        self,
        cls: type[SyncedObject],
        object_id: str,
        where: Addressed,
        objects: dict[uuid.UUID, SyncedObject],
    ) -> SyncedObject:
        """The object ``object_id`` of ``cls`` as this decision sees it."""
        aggregate_id = cls.create_id(object_id, where.namespace)
        if aggregate_id in objects:
            return objects[aggregate_id]
        known = where.known
        if known is not None and aggregate_id in known:
            found = known.get(aggregate_id)
            obj = cast(
                SyncedObject,
                found or cls(object_id, where.source, where.key, where.namespace),  # type: ignore[call-arg]
            )
        else:
            obj = self.load(cls, object_id, where.source, where.key, where.namespace)
        objects[aggregate_id] = obj
        return obj

    def _resolved_receipts(self, resolutions: Sequence[Resolution]) -> list[Receipt]:
        """The receipts of the parked deliveries ``resolutions`` resolved."""
        resolved = []
        for resolution in resolutions:
            parked = cast(
                Receipt,
                self.repository.get(
                    Receipt.create_id(resolution.source, resolution.key)
                ),
            )
            parked.resolve(resolution.outcome.value, resolution.reason)
            resolved.append(parked)
        return resolved

    def commit(self, decisions: Sequence[Decision]) -> None:
        """The unit of work: every decided delivery's record, its new events
        and its resolutions of parked deliveries, in one transaction.

        Group commit is this method called with many decisions at once; it
        may be called again with some of the same decisions after a failure.
        The aggregates go along (their events already taken) for the
        library's snapshots.
        """
        provenance: dict[tuple[uuid.UUID, int], Provenance] = {}
        for decision in decisions:
            provenance.update(decision.provenance)
        self.save(
            *(event for decision in decisions for event in decision.events),
            *(agg for decision in decisions for agg in decision.aggregates),
            deliveries=[decision.record for decision in decisions],
            resolutions=[r for decision in decisions for r in decision.resolutions],
            provenance=provenance,
        )

    def save(
        self,
        *objs: MutableOrImmutableAggregate[uuid.UUID]
        | DomainEventProtocol[uuid.UUID]
        | None,
        **kwargs: Any,
    ) -> list[Recording[uuid.UUID]]:
        """The library's save, telling the recorder where each new event came
        from (``provenance``: the object and the delivery), which it keeps
        beside the event in the audit ledger, hash-chained. Events passed
        as events bring theirs in ``provenance``."""
        provenance: dict[tuple[uuid.UUID, int], Provenance] = dict(
            kwargs.pop("provenance", {})
        )
        for obj in objs:
            if isinstance(obj, SyncedObject | Receipt):
                provenance.update(_provenance(obj, obj.pending_events))
        return super().save(*objs, provenance=provenance, **kwargs)

    def load(
        self,
        cls: type[SyncedObject],
        object_id: str,
        source: str = "",
        key: str = "",
        namespace: str = DEFAULT_NAMESPACE,
    ) -> SyncedObject:
        """The object as stored, or a new one that does not exist yet (tracked
        because of the delivery ``source``/``key``)."""
        found = self.find(cls.kind, object_id, namespace)
        if found is not None:
            return found
        return cls(object_id, source, key, namespace)  # type: ignore[call-arg]

    def erase_customer(
        self, customer_id: str, namespace: str, by: str, reason: str
    ) -> Customer:
        """Record the erasure of a customer's personal data (``Erased``: who,
        why, never a value), whether or not idemsync has heard of it: one
        never seen is tracked as erased, so whatever a partner sends about
        it later is refused. ``AlreadyErased`` the second time. Destroying
        the subject's key and redacting its deliveries is the
        infrastructure's (infrastructure/privacy/erasure.py)."""
        for attempt in range(self.max_attempts):
            customer = cast(
                Customer, self.load(Customer, customer_id, namespace=namespace)
            )
            customer.erase(by, reason)
            try:
                self.save(customer)
            except IntegrityError:
                self.conflicted([Customer.kind])
                self.back_off(attempt)
                continue
            return customer
        raise TooMuchContention(f"customer {customer_id}: {self.max_attempts} attempts")

    def find(
        self, kind: str, object_id: str, namespace: str = DEFAULT_NAMESPACE
    ) -> SyncedObject | None:
        """The stored object, or None when idemsync has never heard of it."""
        cls = AGGREGATES[kind]
        try:
            return cast(
                SyncedObject,
                self.repository.get(cls.create_id(object_id, namespace)),
            )
        except AggregateNotFoundError:
            return None

    def state_of(
        self, kind: str, object_id: str, namespace: str = DEFAULT_NAMESPACE
    ) -> dict[str, Any] | None:
        obj = self.find(kind, object_id, namespace)
        return None if obj is None else obj.state()


def _provenance(
    aggregate: SyncedObject | Receipt, events: Sequence[Any]
) -> dict[tuple[uuid.UUID, int], Provenance]:
    """Where each of ``aggregate``'s ``events`` came from, by event key."""
    return {
        (event.originator_id, event.originator_version): aggregate.provenance(event)
        for event in events
    }
