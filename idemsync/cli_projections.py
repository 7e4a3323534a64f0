"""``idemsync projections …``: status, run (and rebuild)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from idemsync.common import database_of
from infrastructure.persistence.database import Database
from infrastructure.settings import Settings
from projections.runner import ProjectionRunner

log = logging.getLogger("idemsync")


def projection_runner(settings: Settings) -> tuple[ProjectionRunner, Database]:
    """A runner over every projection, on a migrated database."""
    from domain.application import SyncService
    from projections.catalog import all_projections

    database = database_of(settings)
    database.check_ready()
    service = SyncService(env=database.eventsourcing_env())
    runner = ProjectionRunner(
        service,
        database.engine(),
        all_projections(),
        batch_size=settings.projection_batch_size,
        poll_seconds=settings.projection_poll_seconds,
    )
    return runner, database


def cmd_projections_status(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    runner, database = projection_runner(settings)
    table = Table("projection", "position", "head", "lag", "state", "error")
    for status in runner.status():
        table.add_row(
            status.name,
            str(status.position),
            str(status.head),
            str(status.lag),
            status.state,
            status.error or "",
        )
    Console().print(table)
    runner.service.close()
    database.close()
    return 0


def cmd_projections_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the projections in the foreground until SIGINT or SIGTERM."""
    runner, database = projection_runner(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info("running projections %s", ", ".join(runner.projections))
    try:
        runner.run(stop)
    except KeyboardInterrupt:
        stop.set()
    runner.service.close()
    database.close()
    return 0


def add_commands(commands: Any) -> None:
    """Register ``idemsync projections`` and its subcommands."""
    projections = commands.add_parser("projections", help="read models")
    projection_commands = projections.add_subparsers(
        dest="projections_command", required=True
    )
    projection_commands.add_parser(
        "status", help="position, head, lag and state of each projection"
    ).set_defaults(run=cmd_projections_status, secrets=False)
    projection_commands.add_parser(
        "run", help="keep the projections up to date (without serving HTTP)"
    ).set_defaults(run=cmd_projections_run, secrets=False)
