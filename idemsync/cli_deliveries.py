"""``idemsync deliveries …``: replay and prune the delivery log.

The logic is in ``infrastructure.replay`` and ``infrastructure.retention``;
these commands parse arguments and print tables.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from idemsync.cli_history import add_show_command
from idemsync.common import check_ready
from infrastructure.persistence.database import Database
from infrastructure.settings import Settings

OUTCOMES = ("rejected", "parked", "ignored", "stale", "applied")


def moment(text: str) -> datetime:
    """An ``--since`` value: ISO 8601; without a time zone it is UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-11-01T00:00:00+00:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_deliveries_replay(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column, Table

    from infrastructure.bootstrap import bootstrap
    from infrastructure.replay import Replayed, Replayer, summary

    if args.source not in settings.sources:
        configured = ", ".join(settings.sources) or "none"
        print(
            f"idemsync: no source named {args.source!r} (configured: {configured})",
            file=sys.stderr,
        )
        return 2
    check_ready(settings)
    services = bootstrap(settings)
    source = services.intake.source(args.source)
    console = Console()
    try:
        replayer = Replayer(
            services.service, services.database.engine(), source, args.dry_run
        )
        candidates = replayer.candidates(args.outcome, args.since)
        results: list[Replayed] = []
        columns = (
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("replay", total=len(candidates))
            for key, before in candidates:
                result = replayer.replay(key, before)
                if result is not None:
                    results.append(result)
                progress.advance(task)
    finally:
        services.close()
    shown = [r for r in results if args.all or r.changed or r.failed]
    if shown:
        after = "would be" if args.dry_run else "outcome now"
        handle = Column("key", overflow="fold")  # folded, never cut
        table = Table(handle, "outcome before", after, "reason")
        for result in shown:
            now = "failed" if result.failed else result.now
            table.add_row(result.key, result.before, now, result.reason or "")
        console.print(table)
    counts = summary(results)
    console.print(
        ", ".join(f"{name} {count}" for name, count in counts.items())
        + (" (dry run: nothing was written)" if args.dry_run else "")
    )
    return 1 if counts["failed"] else 0


def cmd_deliveries_prune(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    from infrastructure.retention import prune

    database = Database.of(settings)
    database.check_ready()
    try:
        pruned = prune(database.engine(), settings.sources, dry_run=args.dry_run)
    finally:
        database.close()
    verb = "would delete" if args.dry_run else "deleted"
    table = Table("source", "retention days", "received before", verb)
    for result in pruned:
        cutoff = result.cutoff.isoformat(timespec="seconds")
        table.add_row(
            result.source, str(result.retention_days), cutoff, str(result.count)
        )
    Console().print(table)
    total = sum(result.count for result in pruned)
    print(f"{verb} {total} delivery records; events are never pruned")
    return 0


def add_commands(commands: Any) -> None:
    """Register ``idemsync deliveries`` and its subcommands."""
    deliveries = commands.add_parser("deliveries", help="the delivery log")
    delivery_commands = deliveries.add_subparsers(
        dest="deliveries_command", required=True
    )
    replay = delivery_commands.add_parser(
        "replay",
        help="decide stored deliveries again with today's mapping and rules",
    )
    replay.add_argument("--source", required=True, help="the source's name")
    replay.add_argument(
        "--outcome", choices=OUTCOMES, help="only deliveries with this outcome now"
    )
    replay.add_argument(
        "--since",
        type=moment,
        help="only deliveries received at or after this ISO 8601 time (UTC if "
        "it has no zone)",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="decide, but write nothing"
    )
    replay.add_argument(
        "--all", action="store_true", help="list unchanged deliveries too"
    )
    replay.set_defaults(run=cmd_deliveries_replay)
    prune = delivery_commands.add_parser(
        "prune",
        help="delete delivery records older than their source's retention_days",
    )
    prune.add_argument(
        "--dry-run", action="store_true", help="count, but delete nothing"
    )
    prune.set_defaults(run=cmd_deliveries_prune, secrets=False)
    add_show_command(delivery_commands)
