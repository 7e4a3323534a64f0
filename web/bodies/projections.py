"""What ``/admin/projections`` answers; ``web.admin`` encodes these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, UnsetType

from web.bodies.base import Body, Count

RebuildState = Literal["running", "done", "failed"]
ProjectionState = Annotated[
    str, Meta(extra_json_schema={"enum": ["running", "retrying", "failed"]})
]
"""What ``projections.runner`` records: running, or retrying then failed
after an error."""


class ProjectionStatus(Body, kw_only=True):
    """A projection: its position in the log, the head, and the state of the
    last rebuild started by this process."""

    name: str
    position: Count
    head: Count
    lag: Count
    state: ProjectionState
    error: str | None
    rebuild: RebuildState | None


class ProjectionStatusList(Body, kw_only=True):
    """Every projection."""

    projections: list[ProjectionStatus]


class RebuildProgress(Body, kw_only=True):
    """Where a running rebuild is."""

    phase: str
    position: Count
    head: Count
    events: Count
    events_per_second: float
    eta_seconds: float | None


class TableDiff(Body, kw_only=True):
    """Rows of one table that differ; `examples` holds a few."""

    table: str
    differing: Count
    examples: list[dict[str, Any]]


class RebuildReport(Body, kw_only=True):
    """What a rebuild did (`projections.rebuild.RebuildReport`)."""

    name: str
    events: Count
    seconds: float
    events_per_second: float
    position: Count
    swapped: bool
    compared_at: Count | None
    differing_rows: Count
    differences: list[TableDiff] | None
    note: str | None


class RebuildJob(Body, kw_only=True):
    """A rebuild started by this process."""

    name: str
    state: RebuildState
    verify: bool
    dry_run: bool
    started_at: Annotated[float, Meta(description="Unix time, seconds")]
    progress: RebuildProgress | None
    report: RebuildReport | None
    error: str | None


class RebuildStarted(RebuildJob, kw_only=True):
    """A rebuild just started; GET `status_url` for its progress."""

    status_url: str


class NoRebuild(Body, kw_only=True):
    """No rebuild of this projection was started by this process."""

    name: str
    state: Literal["none"]


class ProjectionError(Body, kw_only=True):
    """A refusal of an admin projection operation: `known` lists the
    projections (404), `status_url` the running rebuild (409)."""

    error: str
    known: list[str] | UnsetType = UNSET
    status_url: str | UnsetType = UNSET
