"""In memory: for the domain's tests and for dry runs, same interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from domain.delivery import DeliveryRecord, FirstAnswer, Resolution


class MemoryDeliveryRecorder(POPOApplicationRecorder):
    """Keeps delivery answers next to the events, under the same lock."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[tuple[str, str], FirstAnswer] = {}
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
            if len(set(keys)) != len(keys) or any(k in self.answers for k in keys):
                raise IntegrityError(f"delivery already recorded: {keys}")
            notification_ids = super()._insert_events(stored_events, **kwargs)
            for record in deliveries:
                key = (record.delivery.source, record.delivery.key)
                self.answers[key] = FirstAnswer(
                    record.answer.to_json(), record.delivery.received_at
                )
            for resolution in resolutions:
                self.resolutions[(resolution.source, resolution.key)] = resolution
            return notification_ids

    def find_answer(self, source: str, key: str) -> FirstAnswer | None:
        with self._database_lock:
            return self.answers.get((source, key))


class MemoryFactory(POPOFactory):
    """eventsourcing's in-memory factory with the delivery-log recorder."""

    def application_recorder(self) -> MemoryDeliveryRecorder:
        return MemoryDeliveryRecorder()
