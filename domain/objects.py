"""What orders and customers share: a status on a lifecycle, fields that are
last-write-wins by position, and commands parked until the object exists."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from eventsourcing.domain import Aggregate, event
from eventsourcing.domain import Snapshot as AggregateSnapshot

from domain.commands import Command
from domain.delivery import Outcome, Resolution
from domain.errors import (
    AlreadyParked,
    DomainError,
    IllegalTransition,
    NothingNewer,
    NotParked,
    NotYetCreated,
)
from domain.namespaces import DEFAULT_NAMESPACE, object_uuid
from domain.provenance import Provenance
from domain.rules import (
    RECORDED_BEFORE_DIGESTS,
    UNKNOWN_PROGRESS,
    Position,
    Verdict,
)


def position_of(stored: list[Any] | tuple[Any, ...]) -> Position:
    value, rank, progress, content = stored
    return (int(value), int(rank), int(progress), str(content))


def _before_digests(stored: list[Any]) -> list[Any]:
    """A position recorded with the delivery's key as its tie-breaker, with
    ``RECORDED_BEFORE_DIGESTS`` instead and, where it stated no progress,
    ``UNKNOWN_PROGRESS`` (see domain.rules)."""
    value, rank, progress = stored[:3]
    return [value, rank, progress or UNKNOWN_PROGRESS, RECORDED_BEFORE_DIGESTS]


class SyncedObject(Aggregate):
    """A partner's object as idemsync knows it.

    Subclasses give the transition table and one ``Changed`` event class per
    command type; the rules that decide between applied, stale, rejected and
    parked live here, once.
    """

    kind: ClassVar[str]
    transitions: ClassVar[dict[str | None, dict[str, Verdict]]]
    status_of: ClassVar[dict[str, str]]
    event_names: ClassVar[Mapping[str, str]]
    """The name of the event class of each command type. Names, not classes:
    eventsourcing replaces the nested classes once the aggregate class is
    made, so a class captured in the class body would be a stale copy."""

    class_version = 3
    """Version 2: positions end with a content digest, not the delivery's key
    (snapshots taken before are upcast by ``upcast_v1_v2``). Version 3: the
    object has a namespace (``DEFAULT_NAMESPACE`` for those taken before)."""

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["positions"] = {
            name: _before_digests(at) for name, at in state["positions"].items()
        }

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["namespace"] = DEFAULT_NAMESPACE

    @classmethod
    def create_id(cls, object_id: str, namespace: str = DEFAULT_NAMESPACE) -> uuid.UUID:
        return object_uuid(cls.kind, namespace, object_id)

    class Changed(Aggregate.Event):
        """A command took effect on the partner's object ``object_id``:
        ``changes`` holds the fields it took (with ``status`` when the status
        moved), all at ``position``. ``source``, ``key`` and ``occurred_at``
        (the source's time) say which delivery; ``namespace`` whose object
        (projections read it from here).

        Version 2: ``position`` ends with the content digest of the command;
        events stored before end with the delivery's key, upcast on load to
        ``RECORDED_BEFORE_DIGESTS`` (the stored bytes, which the audit chain
        hashes, are never rewritten). Version 3: ``namespace``;
        ``DEFAULT_NAMESPACE`` for events stored before."""

        class_version = 3

        object_id: str
        changes: dict[str, Any]
        position: list[Any]
        source: str
        key: str
        occurred_at: str
        namespace: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["position"] = _before_digests(state["position"])

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["namespace"] = DEFAULT_NAMESPACE

        def apply(self, aggregate: Aggregate) -> None:
            cast(SyncedObject, aggregate)._apply(self.changes, self.position)

    class Snapshot(AggregateSnapshot):
        """The object's state at a version (``SyncService`` takes one every
        ``snapshotting_intervals`` events). It is stored as JSON, which turns
        the position tuples into lists: made tuples again here, as replaying
        the events would (a list never compares with a new command's tuple)."""

        def mutate(self, _: None) -> SyncedObject:
            obj = cast(SyncedObject, super().mutate(_))
            obj.positions = {
                name: position_of(at) for name, at in obj.positions.items()
            }
            return obj

    def provenance(self, event: object) -> Provenance:
        """The object and the delivery behind ``event`` (every event of a
        synced object names its delivery's ``source`` and ``key``)."""
        return Provenance(
            self.kind,
            self.object_id,
            getattr(event, "source", None) or None,
            getattr(event, "key", None) or None,
            getattr(event, "occurred_at", None) or None,
            self.namespace,
        )

    def _start(self, object_id: str, namespace: str) -> None:
        """Initial state (not annotated on the class: eventsourcing would take
        class annotations for constructor arguments)."""
        self.object_id = object_id
        self.namespace = namespace
        self.status: str | None = None
        self.values: dict[str, Any] = {}
        self.positions: dict[str, Position] = {}
        self.parked: list[dict[str, Any]] = []

    @property
    def exists(self) -> bool:
        """Created by the partner (not merely tracked because of a parked event)."""
        return self.status is not None

    def state(self) -> dict[str, Any]:
        """The domain state, without versions or timestamps: what convergence
        compares."""
        return {
            "status": self.status,
            "values": dict(self.values),
            "positions": dict(self.positions),
            "parked": sorted(p["key"] for p in self.parked),
        }

    def execute(self, command: Command, source: str, key: str) -> list[Resolution]:
        """Apply ``command``, or raise the domain error that says why not.

        Returns what became of the parked commands when this one created the
        object.
        """
        position = command.position()
        verdict = self.check_exists(command)
        changes = self.check_changes(command, verdict, position)
        self.record(command, changes, position, source, key)
        if verdict is Verdict.CREATE:
            return self._release_parked(source, key)
        return []

    def check_exists(self, command: Command) -> Verdict:
        verdict = self.transitions[self.status][command.type]
        if verdict is Verdict.PARK:
            raise NotYetCreated(
                f"{self.kind} {self.object_id} does not exist yet; "
                f"{command.type} waits for it"
            )
        return verdict

    def check_changes(
        self, command: Command, verdict: Verdict, position: Position
    ) -> dict[str, Any]:
        """The fields this command wins (``status`` among them when it moves;
        never for ``KEEP``, whose command has no say in the status)."""
        changes: dict[str, Any] = {}
        if verdict is not Verdict.KEEP and self._is_newer("status", position):
            if verdict is Verdict.REJECT:
                raise IllegalTransition(
                    f"{command.type} is not allowed for a {self.status} {self.kind}"
                )
            changes["status"] = self.status_of[command.type]
        for name, value in command.values().items():
            if self._is_newer(name, position):
                changes[name] = value
        if not changes:
            raise NothingNewer(
                f"{command.type} is older than what {self.kind} "
                f"{self.object_id} already knows"
            )
        return changes

    def check_not_parked(self, command: Command, source: str, key: str) -> None:
        """The same command of the same delivery waits once (a delivery may
        park several commands on one object: a Stripe charge listing its
        refunds, a Shopify order with its refunds)."""
        stated = command.to_dict()
        for parked in self.parked:
            if (parked["key"], parked["source"], parked["command"]) == (
                key,
                source,
                stated,
            ):
                raise AlreadyParked(f"{self.kind} {self.object_id} does not exist yet")

    def park(self, command: Command, source: str, key: str) -> None:
        self.check_not_parked(command, source, key)
        self._parked(
            command=command.to_dict(),
            source=source,
            key=key,
            occurred_at=command.occurred_at.isoformat(),
        )

    def record(
        self,
        command: Command,
        changes: dict[str, Any],
        position: Position,
        source: str,
        key: str,
    ) -> None:
        """Trigger the event of ``command``'s type."""
        self.trigger_event(
            getattr(type(self), self.event_names[command.type]),
            object_id=self.object_id,
            changes=changes,
            position=list(position),
            source=source,
            key=key,
            occurred_at=command.occurred_at.isoformat(),
            namespace=self.namespace,
        )

    def _is_newer(self, name: str, position: Position) -> bool:
        known = self.positions.get(name)
        return known is None or position > known

    def _apply(self, changes: dict[str, Any], position: list[Any]) -> None:
        at = position_of(position)
        for name, value in changes.items():
            if name == "status":
                self.status = value
            else:
                self.values[name] = value
            self.positions[name] = at

    def _release_parked(self, source: str, key: str) -> list[Resolution]:
        """Decide the parked commands, in position order, now that the object
        exists (``source``/``key``: the delivery that created it). Each keeps
        its own delivery's source and key (``SyncService`` gives a delivery
        that parked several commands one resolution, the strongest)."""
        if not self.parked:
            return []
        waiting = sorted(
            self.parked,
            key=lambda p: Command.from_dict(p["command"]).position(),
        )
        self._released(keys=[p["key"] for p in waiting], source=source, key=key)
        resolutions = []
        for parked in waiting:
            command = Command.from_dict(parked["command"])
            outcome, reason = Outcome.APPLIED, None
            try:
                self.execute(command, parked["source"], parked["key"])
            except DomainError as refusal:
                outcome = (
                    Outcome.REJECTED
                    if isinstance(refusal, IllegalTransition)
                    else Outcome.STALE
                )
                reason = refusal.reason
            resolutions.append(
                Resolution(parked["source"], parked["key"], outcome, reason)
            )
        return resolutions

    @event("Parked")
    def _parked(
        self, command: dict[str, Any], source: str, key: str, occurred_at: str = ""
    ) -> None:
        self.parked = [*self.parked, {"command": command, "source": source, "key": key}]

    @event("Released")
    def _released(self, keys: list[str], source: str = "", key: str = "") -> None:
        self.parked = [p for p in self.parked if p["key"] not in keys]

    def check_parked_here(self, source: str, key: str) -> list[Command]:
        """The commands the delivery ``source``/``key`` parked here, in
        position order; ``NotParked`` when there are none."""
        waiting = [
            Command.from_dict(p["command"])
            for p in self.parked
            if (p["source"], p["key"]) == (source, key)
        ]
        if not waiting:
            raise NotParked(f"{self.kind} {self.object_id} holds nothing of {key}")
        return sorted(waiting, key=lambda command: command.position())

    def check_can_release(self) -> None:
        if not self.exists:
            raise NotYetCreated(
                f"{self.kind} {self.object_id} does not exist yet: a released "
                "delivery would only park again (discard it, or wait)"
            )

    def release_by_hand(
        self, source: str, key: str, by: str, reason: str
    ) -> list[Command]:
        """An operator's release of what the delivery parked here, now that
        the object exists: the commands to decide, which leave the queue."""
        waiting = self.check_parked_here(source, key)
        self.check_can_release()
        self._handed_on(source=source, key=key, by=by, reason=reason)
        return waiting

    def discard(self, source: str, key: str, by: str, reason: str) -> None:
        """An operator's discard of what the delivery parked here: it leaves
        the queue and is never applied."""
        self.check_parked_here(source, key)
        self._discarded(source=source, key=key, by=by, reason=reason)

    def _drop_parked(self, source: str, key: str) -> None:
        self.parked = [
            p for p in self.parked if (p["source"], p["key"]) != (source, key)
        ]

    @event("HandedOn")
    def _handed_on(self, source: str, key: str, by: str, reason: str) -> None:
        """Released by an operator (``by``: the token's name) to be decided
        now; ``source``/``key``: the parked delivery."""
        self._drop_parked(source, key)

    @event("Discarded")
    def _discarded(self, source: str, key: str, by: str, reason: str) -> None:
        """Discarded by an operator (``by``: the token's name), with why."""
        self._drop_parked(source, key)
