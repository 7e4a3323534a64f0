"""``bootstrap(settings)``: the services every entry point uses, built once,
the same way, for the server, the CLI and the tests.

The web app adds what only a server runs (the projections thread, periodic
prune, flush and checkpoint, metrics and access) around them; the CLI and
the tests use them as they are. Nothing is attached afterwards: what a
service needs is given to its constructor.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from eventsourcing.persistence import Mapper

from domain.application import Committer, SyncService
from infrastructure.audit.trail import AuditTrail
from infrastructure.group_commit import GroupCommit
from infrastructure.persistence.database import Database
from infrastructure.pipeline import Pipeline
from infrastructure.privacy.erasure import Eraser
from infrastructure.privacy.mapper import SealingMapper
from infrastructure.privacy.store import SubjectKeys
from infrastructure.settings import Settings
from infrastructure.sightings import Sightings


@dataclass(frozen=True)
class Services:
    """The store, the service that decides deliveries, the pipeline that
    takes them (None for a reader that was given no secrets: the audit
    commands), and the audit trail, for one configuration."""

    settings: Settings
    database: Database
    service: SyncService
    pipeline: Pipeline | None
    audit: AuditTrail
    eraser: Eraser

    @property
    def intake(self) -> Pipeline:
        """The pipeline, which this configuration must have built."""
        if self.pipeline is None:
            raise RuntimeError("bootstrap(..., deliveries=False) builds no pipeline")
        return self.pipeline

    @property
    def group_commit(self) -> GroupCommit | None:
        """The writer thread, when the service commits in groups."""
        committer = self.service.committer
        return committer if isinstance(committer, GroupCommit) else None

    def close(self) -> None:
        if self.group_commit is not None:
            self.group_commit.close()
        self.service.close()
        self.database.close()


def sync_service(
    settings: Settings,
    database: Database,
    *,
    on_conflict: Callable[[str], None] | None = None,
    committer: Callable[[SyncService], Committer] | None = None,
) -> SyncService:
    """The service on ``database``, sealing personal fields when
    ``settings`` has a master key: every entry point that reads or writes
    events builds it here, so that none stores or shows a personal field
    the others would seal."""
    master = settings.master_key

    def sealing(mapper: Mapper[uuid.UUID]) -> Mapper[uuid.UUID]:
        assert master is not None
        return SealingMapper(mapper, SubjectKeys(database.engine(), master))

    return SyncService(
        env=database.eventsourcing_env(),
        on_conflict=on_conflict,
        committer=committer,
        mapper=None if master is None else sealing,
    )


def bootstrap(
    settings: Settings,
    *,
    deliveries: bool = True,
    group_commit: bool = False,
    sightings: bool = False,
    on_conflict: Callable[[str], None] | None = None,
) -> Services:
    """The services of ``settings``. ``deliveries``: build the pipeline
    (false for the audit commands, whose settings hold no secrets);
    ``group_commit``: deliveries commit together in a writer thread (the
    server; its ``start`` is the caller's); ``sightings``: duplicates are
    counted for a periodic flush (the server)."""
    database = Database.of(settings)
    committer: Callable[[SyncService], Committer] | None = None
    if group_commit:

        def committer(service: SyncService) -> Committer:
            return GroupCommit(
                service,
                max_waiting=settings.server.max_waiting_commits,
                wait_seconds=settings.server.commit_wait_seconds,
            )

    service = sync_service(
        settings, database, on_conflict=on_conflict, committer=committer
    )
    pinned = database.pinned_namespaces()
    sources: dict[str, list[str]] = {}
    for source in settings.sources.values():
        sources.setdefault(source.namespace_of(pinned)[0], []).append(source.name)
    master = settings.master_key
    eraser = Eraser(
        service,
        database.engine(),
        None if master is None else SubjectKeys(database.engine(), master),
        sources,
    )
    pipeline = (
        Pipeline(
            settings,
            service,
            sightings=Sightings(database.engine()) if sightings else None,
            pinned=pinned,
            eraser=eraser,
        )
        if deliveries
        else None
    )
    return Services(
        settings,
        database,
        service,
        pipeline,
        AuditTrail(database.engine(), service, list(sources)),
        eraser,
    )
