"""What the app holds, typed: ``app_state(app)`` instead of ``app.state.X``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from infrastructure.access import Access
from infrastructure.audit.trail import AuditTrail
from infrastructure.bootstrap import Services
from infrastructure.metrics import Metrics, StoreGauges
from infrastructure.persistence.database import Database
from infrastructure.pipeline import Pipeline
from infrastructure.settings import Settings
from infrastructure.sightings import Sightings
from projections.runner import ProjectionRunner
from web.admission import Admission


@dataclass
class AppState:
    """Everything the routes use, built once by ``create_app``. ``database``
    is the services' own (a test may put an unreachable one in its place)."""

    settings: Settings
    services: Services
    database: Database
    access: Access
    admission: Admission
    sightings: Sightings
    runner: ProjectionRunner
    metrics: Metrics
    store_gauges: StoreGauges
    openapi: Mapping[str, Any]
    rebuilds: Any = None
    """``web.admin.Rebuilds``, made on first use (on the event loop)."""

    @property
    def pipeline(self) -> Pipeline:
        return self.services.intake

    @property
    def audit(self) -> AuditTrail:
        return self.services.audit


def app_state(app: Any) -> AppState:
    """The state ``create_app`` gave ``app`` (a Starlette app, or a request's)."""
    return cast(AppState, app.state.idemsync)
