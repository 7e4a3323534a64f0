"""Deliveries through the real pipeline (verify, map, decide, commit), built
by ``bootstrap`` as the server builds it, without a server and its periodic
threads: the test decides when checkpoints fall."""

from __future__ import annotations

from infrastructure.bootstrap import bootstrap
from infrastructure.settings import Settings
from tests.partner import Request


def deliver(settings: Settings, *requests: Request, source: str = "acme") -> None:
    """Receive each request; each must be applied."""
    services = bootstrap(settings)
    try:
        for request in requests:
            answer = services.intake.receive(source, request.headers, request.body)
            assert answer.to_json()["outcome"] == "applied", answer.to_json()
    finally:
        services.close()
