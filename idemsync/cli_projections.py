"""``idemsync projections …``: status, run, rebuild."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from infrastructure.persistence.database import Database
from infrastructure.settings import Settings
from projections.rebuild import Progress as RebuildProgress
from projections.rebuild import RebuildReport, RebuildRunning, rebuild
from projections.runner import ProjectionRunner

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("idemsync")


def projection_runner(settings: Settings) -> tuple[ProjectionRunner, Database]:
    """A runner over every projection, on a migrated database."""
    from infrastructure.bootstrap import sync_service
    from projections.catalog import runner_for

    database = Database.of(settings)
    database.check_ready()
    service = sync_service(settings, database)
    return runner_for(service, database.engine(), settings), database


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


def cmd_projections_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild the named projections with a progress bar, then a summary."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskID,
        TaskProgressColumn,
        TextColumn,
    )

    runner, database = projection_runner(settings)
    names = list(runner.projections) if args.all else [args.name]
    console = Console()
    reports: list[RebuildReport] = []
    refused = False
    try:
        for name in names:
            if name not in runner.projections:
                known = ", ".join(runner.projections)
                print(
                    f"idemsync: no projection {name!r} (known: {known})",
                    file=sys.stderr,
                )
                return 2
        with Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>16} events/s  ETA {task.fields[eta]}"),
            console=console,
        ) as bar:
            for name in names:
                task = bar.add_task(name, total=None, rate="-", eta="-")

                def show(progress: RebuildProgress, task: TaskID = task) -> None:
                    eta = progress.eta_seconds
                    bar.update(
                        task,
                        total=max(progress.head, 1),
                        completed=progress.position,
                        rate=f"{progress.events_per_second:,.0f}",
                        eta="-" if eta is None else f"{eta:,.0f}s",
                    )

                try:
                    report = rebuild(
                        runner,
                        name,
                        verify=args.verify,
                        dry_run=args.dry_run,
                        batch_size=args.batch_size,
                        progress=show,
                    )
                except RebuildRunning as running:
                    bar.remove_task(task)
                    bar.console.print(f"idemsync: {running}: skipped", style="red")
                    refused = True
                else:
                    reports.append(report)
    finally:
        runner.service.close()
        database.close()
    if reports:
        _print_summary(console, reports, compared=args.verify or args.dry_run)
    differing = any(report.differing_rows for report in reports)
    return 1 if refused or (args.dry_run and args.verify and differing) else 0


def _print_summary(
    console: Console, reports: list[RebuildReport], compared: bool
) -> None:
    """One row per projection; then, per table that differs, a few rows."""
    from rich.table import Table

    table = Table()
    table.add_column("projection", no_wrap=True)
    for column in ("events", "seconds", "events/s", "position"):
        table.add_column(column, justify="right")
    table.add_column("result")
    if compared:
        table.add_column("differing rows", justify="right")
    for report in reports:
        row = [
            report.name,
            f"{report.events:,}",
            f"{report.seconds:.2f}",
            f"{report.events_per_second:,.0f}",
            str(report.position),
            "swapped" if report.swapped else "dry run",
        ]
        table.add_row(*row, *([f"{report.differing_rows:,}"] if compared else []))
    console.print(table)
    for report in reports:
        if report.note:
            console.print(f"{report.name}: {report.note}")
        for diff in report.differences or ():
            if diff.differing:
                rows = "row" if diff.differing == 1 else "rows"
                console.print(
                    f"{diff.table}: {diff.differing:,} differing {rows}, e.g."
                )
            for example in diff.examples:
                console.print(f"  {_describe(example)}", markup=False)


def _describe(example: dict[str, Any]) -> str:
    """``{key} live → rebuilt``, only the columns that differ."""
    key = ", ".join(f"{k}={v}" for k, v in example["key"].items())
    live, rebuilt = example["live"], example["rebuilt"]
    if live is None or rebuilt is None:
        return f"{key}: only in the {'rebuilt' if live is None else 'live'} model"
    changes = [
        f"{column} {live[column]!r} → {rebuilt[column]!r}"
        for column in live
        if live[column] != rebuilt[column]
    ]
    return f"{key}: " + "; ".join(changes)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


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
    rebuild_command = projection_commands.add_parser(
        "rebuild",
        help="replay the log into shadow tables and swap them in",
        description="Replay the whole log into shadow tables (progress bar: "
        "events/s, ETA), catch up with live traffic, then swap them in, in one "
        "transaction. Reads and ingest go on throughout. Exit status: 0 when "
        "done (a rebuild fixes differences); with --dry-run --verify, 1 when "
        "rows differ (a check); 1 when a rebuild of it is already running; 2 "
        "for an unknown projection.",
    )
    which = rebuild_command.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", help="the projection to rebuild")
    which.add_argument("--all", action="store_true", help="every projection")
    rebuild_command.add_argument(
        "--verify",
        action="store_true",
        help="before swapping, count the rows that differ from the live model "
        "and show a few",
    )
    rebuild_command.add_argument(
        "--dry-run",
        action="store_true",
        help="rebuild and compare, then drop the shadow: the live model is untouched",
    )
    rebuild_command.add_argument(
        "--batch-size",
        type=_positive,
        default=5000,
        help="events per transaction, at most (on SQLite, where a batch holds "
        "the write lock, batches are sized to about a quarter of a second)",
    )
    rebuild_command.set_defaults(run=cmd_projections_rebuild, secrets=False)
