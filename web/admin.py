"""Operations under ``/admin``, for bearer tokens with the role ``admin``
(``web.access``): projection status, and rebuilds in the background.

- ``GET /admin/projections``: name, position, head, lag, state, error (and
  the last rebuild started here) of each projection.
- ``POST /admin/projections/{name}/rebuild?verify=1&dry_run=1``: starts a
  rebuild in a background thread; 202 with its status URL, 409 while one of
  that projection is running.
- ``GET /admin/projections/{name}/rebuild``: its progress, then its report.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import msgspec
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from infrastructure.access import Role
from projections.rebuild import Progress, RebuildReport, rebuild
from projections.runner import ProjectionRunner
from web.access import requires
from web.bodies import projections as bodies
from web.params import TRUE
from web.responses import json_response, store_unavailable
from web.state import app_state


@dataclass
class RebuildJob:
    """One background rebuild: running, then done (with a report) or failed."""

    name: str
    verify: bool
    dry_run: bool
    state: bodies.RebuildState = "running"
    progress: Progress | None = None
    report: RebuildReport | None = None
    error: str | None = None
    started_at: float = field(default_factory=time.time)

    def body(self) -> bodies.RebuildJob:
        progress, report = self.progress, self.report
        return bodies.RebuildJob(
            name=self.name,
            state=self.state,
            verify=self.verify,
            dry_run=self.dry_run,
            started_at=self.started_at,
            progress=None
            if progress is None
            else bodies.RebuildProgress(
                phase=progress.phase,
                position=progress.position,
                head=progress.head,
                events=progress.events,
                events_per_second=round(progress.events_per_second, 1),
                eta_seconds=progress.eta_seconds,
            ),
            report=None
            if report is None
            else msgspec.convert(report.to_dict(), bodies.RebuildReport),
            error=self.error,
        )


class Rebuilds:
    """The rebuilds started through this app: at most one running per
    projection in this process (``rebuild`` itself refuses a second one
    across processes), and the last one of each projection."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self.runner = runner
        self.jobs: dict[str, RebuildJob] = {}
        self._lock = threading.Lock()

    def start(self, name: str, *, verify: bool, dry_run: bool) -> RebuildJob | None:
        """The new job, or None when one of ``name`` is still running."""
        with self._lock:
            current = self.jobs.get(name)
            if current is not None and current.state == "running":
                return None
            job = self.jobs[name] = RebuildJob(name, verify, dry_run)
        threading.Thread(
            target=self._run, args=(job,), name=f"rebuild-{name}", daemon=True
        ).start()
        return job

    def _run(self, job: RebuildJob) -> None:
        def show(progress: Progress) -> None:
            job.progress = progress

        try:
            job.report = rebuild(
                self.runner,
                job.name,
                verify=job.verify,
                dry_run=job.dry_run,
                progress=show,
            )
        except Exception as error:
            job.error, job.state = f"{type(error).__name__}: {error}", "failed"
        else:
            job.state = "done"


def _rebuilds(request: Request) -> Rebuilds:
    """This app's ``Rebuilds`` (made on first use, on the event loop)."""
    state = app_state(request.app)
    if state.rebuilds is None:
        state.rebuilds = Rebuilds(state.runner)
    rebuilds: Rebuilds = state.rebuilds
    return rebuilds


def _unknown(rebuilds: Rebuilds, name: str) -> Response | None:
    if name in rebuilds.runner.projections:
        return None
    known = sorted(rebuilds.runner.projections)
    refused = bodies.ProjectionError(error=f"no projection {name!r}", known=known)
    return json_response(refused, 404)


@requires(Role.ADMIN)
async def projection_status(request: Request) -> Response:
    rebuilds = _rebuilds(request)
    try:
        statuses = await run_in_threadpool(rebuilds.runner.status)
    except DBAPIError:
        return store_unavailable(request)
    jobs = rebuilds.jobs
    return json_response(
        bodies.ProjectionStatusList(
            projections=[
                bodies.ProjectionStatus(
                    name=status.name,
                    position=status.position,
                    head=status.head,
                    lag=status.lag,
                    state=status.state,
                    error=status.error,
                    rebuild=jobs[status.name].state if status.name in jobs else None,
                )
                for status in statuses
            ]
        )
    )


@requires(Role.ADMIN)
async def start_rebuild(request: Request) -> Response:
    rebuilds, name = _rebuilds(request), request.path_params["name"]
    url = str(request.url_for("rebuild_status", name=name).path)
    flags = {
        k: request.query_params.get(k, "").lower() in TRUE
        for k in ("verify", "dry_run")
    }
    unknown = _unknown(rebuilds, name)
    if unknown is not None:
        return unknown
    job = rebuilds.start(name, **flags)
    if job is None:
        running = f"a rebuild of {name!r} is running"
        return json_response(bodies.ProjectionError(error=running, status_url=url), 409)
    started = bodies.RebuildStarted(
        **msgspec.structs.asdict(job.body()), status_url=url
    )
    return json_response(started, 202, headers={"location": url})


@requires(Role.ADMIN)
async def rebuild_status(request: Request) -> Response:
    rebuilds, name = _rebuilds(request), request.path_params["name"]
    unknown = _unknown(rebuilds, name)
    if unknown is not None:
        return unknown
    job = rebuilds.jobs.get(name)
    return json_response(
        bodies.NoRebuild(name=name, state="none") if job is None else job.body()
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/projections", projection_status, methods=["GET"]),
        Route(
            "/admin/projections/{name}/rebuild",
            start_rebuild,
            methods=["POST"],
        ),
        Route(
            "/admin/projections/{name}/rebuild",
            rebuild_status,
            methods=["GET"],
            name="rebuild_status",
        ),
    ]
