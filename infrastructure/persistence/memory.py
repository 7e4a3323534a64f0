"""In memory: for the domain's tests and for dry runs, same interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from domain.delivery import Ask, DeliveryRecord, FirstAnswer, Resolution


class MemoryDeliveryRecorder(POPOApplicationRecorder):
    """Keeps delivery answers next to the events, under the same lock."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[tuple[str, str], FirstAnswer] = {}
        self.fingerprints: dict[tuple[str, str], FirstAnswer] = {}
        self.resolutions: dict[tuple[str, str], Resolution] = {}

    def _insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        deliveries: Sequence[DeliveryRecord] = (),
        resolutions: Sequence[Resolution] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        with self._database_lock:
            keys = [(r.delivery.source, r.delivery.key) for r in deliveries]
            prints = [
                (r.delivery.source, r.delivery.fingerprint)
                for r in deliveries
                if r.delivery.fingerprint is not None
            ]
            if _repeats(keys, self.answers) or _repeats(prints, self.fingerprints):
                raise IntegrityError(f"delivery already recorded: {keys}")
            notification_ids = super()._insert_events(stored_events, **kwargs)
            for record in deliveries:
                delivery = record.delivery
                first = FirstAnswer(record.answer.to_json(), delivery.received_at)
                self.answers[(delivery.source, delivery.key)] = first
                if delivery.fingerprint is not None:
                    self.fingerprints[(delivery.source, delivery.fingerprint)] = first
            for resolution in resolutions:
                self.resolutions[(resolution.source, resolution.key)] = resolution
            return notification_ids

    def find_answer(
        self, source: str, key: str, fingerprint: str | None = None
    ) -> FirstAnswer | None:
        with self._database_lock:
            first = self.answers.get((source, key))
            if first is None and fingerprint is not None:
                first = self.fingerprints.get((source, fingerprint))
            return first

    def find_answers(self, asks: Sequence[Ask]) -> list[FirstAnswer | None]:
        return [self.find_answer(a.source, a.key, a.fingerprint) for a in asks]


def _repeats(ids: list[tuple[str, str]], recorded: Mapping[Any, object]) -> bool:
    """Whether ``ids`` repeat one another or one already ``recorded``."""
    return len(set(ids)) != len(ids) or any(i in recorded for i in ids)


class MemoryFactory(POPOFactory):
    """eventsourcing's in-memory factory with the delivery-log recorder."""

    def application_recorder(self) -> MemoryDeliveryRecorder:
        return MemoryDeliveryRecorder()
