"""Deliveries through the real intake (verify, map, decide, commit), without
a server and its periodic threads: the test decides when checkpoints fall."""

from __future__ import annotations

from domain.application import SyncService
from infrastructure.persistence.database import Database
from infrastructure.pipeline import Pipeline
from infrastructure.settings import Settings
from tests.partner import Request


def deliver(settings: Settings, *requests: Request, source: str = "acme") -> None:
    """Receive each request; each must be applied."""
    database = Database.of(settings)
    service = SyncService(env=database.eventsourcing_env())
    try:
        intake = Pipeline(settings, service)
        for request in requests:
            answer = intake.receive(source, request.headers, request.body)
            assert answer.to_json()["outcome"] == "applied", answer.to_json()
    finally:
        service.close()
        database.close()
