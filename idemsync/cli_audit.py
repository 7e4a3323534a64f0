"""``idemsync audit …``: verify the ledger and the checkpoints, write checkpoints.

``add_commands`` returns the ``audit`` group's subparsers, so that other
modules can register more ``idemsync audit`` subcommands on it.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from infrastructure.persistence.database import Database
from infrastructure.settings import Settings

if TYPE_CHECKING:
    from infrastructure.audit.checkpoints import Checkpoint
    from infrastructure.audit.verify import Finding, Report

ANCHOR = re.compile(r"^(\d+):([0-9a-f]{64})$")
KEEP_IT_ELSEWHERE = (
    "Keep this line somewhere outside this database (a ticket, a log shipped "
    "to another system, a signed commit): an attacker able to rewrite the "
    "whole ledger and every checkpoint can only be caught against an anchor "
    "kept elsewhere. Check it later with `idemsync audit verify --anchor "
    "SEQ:HASH`."
)


def _database(settings: Settings) -> Database:
    database = Database.of(settings)
    database.check_ready()
    return database


def describe_head(head: Checkpoint | None) -> str:
    """The head checkpoint in one line (seq, range, hash), or why there is none."""
    if head is None:
        return (
            "no checkpoint yet (`idemsync audit checkpoint` writes them; "
            "`idemsync serve` does every few seconds)"
        )
    return (
        f"head checkpoint: seq {head.seq}, last notification "
        f"{head.last_notification_id}, hash {head.hash}"
    )


def describe_finding(finding: Finding) -> str:
    """One line: kind, notification id, aggregate type/id, version, message."""
    where = (
        f"notification {finding.notification_id}"
        if finding.notification_id is not None
        else "notification -"
    )
    if finding.checkpoint is not None and finding.aggregate_type is None:
        what = f"checkpoint {finding.checkpoint}"
    else:
        what = f"{finding.aggregate_type} {finding.aggregate_id}"
        if finding.version is not None:
            what += f" version {finding.version}"
    return f"{finding.kind.upper():<10}  {where:<20}  {what}: {finding.message}"


def _anchor(value: str) -> tuple[int, str]:
    match = ANCHOR.match(value.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not SEQ:HASH (a checkpoint seq and its 64 hex digits)"
        )
    return int(match.group(1)), match.group(2)


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute every hash and checkpoint with a progress bar on stderr;
    print the findings, a summary and the head; exit 1 on any finding."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskID,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from infrastructure.audit.verify import Progress as VerifyProgress
    from infrastructure.audit.verify import verify

    database = _database(settings)
    labels = {"aggregates": "event chains", "checkpoints": "checkpoints"}
    try:
        with Progress(
            TextColumn("{task.description:<13}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]:>12} events/s"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            redirect_stdout=False,
            redirect_stderr=False,
        ) as bar:
            tasks: dict[str, TaskID] = {}

            def show(progress: VerifyProgress) -> None:
                if progress.phase not in tasks:
                    tasks[progress.phase] = bar.add_task(
                        labels.get(progress.phase, progress.phase), rate="-"
                    )
                bar.update(
                    tasks[progress.phase],
                    total=max(progress.total, 1),
                    completed=progress.done,
                    rate=f"{progress.events_per_second:,.0f}",
                )

            report = verify(database.engine(), show, anchor=args.anchor)
    finally:
        database.close()
    _print_report(report)
    return 1 if report.failed else 0


def _print_report(report: Report) -> None:
    from infrastructure.audit.verify import (
        ANCHOR,
        CHECKPOINT,
        DELETED,
        INSERTED,
        MODIFIED,
    )

    for finding in report.findings:
        print(describe_finding(finding))
    more = sum(report.by_kind.values()) - len(report.findings)
    if more:
        print(f"… and {more:,} more findings (counted below)")
    counts = report.by_kind
    summary = (
        f"verified {_many(report.events, 'event')} of "
        f"{_many(report.aggregates, 'aggregate')}, "
        f"{_many(report.ledger_rows, 'ledger row')} and "
        f"{_many(report.checkpoints, 'checkpoint')} in {report.seconds:.1f} s: "
        f"{counts[MODIFIED]:,} modified, {counts[DELETED]:,} deleted, "
        f"{counts[INSERTED]:,} inserted, {counts[CHECKPOINT]:,} checkpoint findings"
    )
    if counts[ANCHOR]:
        summary += f", {counts[ANCHOR]:,} anchor mismatch"
    print(summary)
    if report.unchecked_links:
        print(
            f"not checked: {_many(report.unchecked_links, 'event')} chained to a "
            "ledger row reported above as gone (their own hashes cannot be "
            "recomputed without it)"
        )
    if report.uncovered_events:
        print(
            f"not yet covered: {_many(report.uncovered_events, 'event')} after "
            f"the last checkpoint (notifications {report.uncovered_first}-"
            f"{report.uncovered_last}); until the next checkpoint only their "
            "aggregate's chain covers them"
        )
    print(
        "FAILED: the store was changed behind the engine's back"
        if report.failed
        else "OK: every event, ledger row and checkpoint matches"
    )
    print(describe_head(report.head))
    if report.head is not None:
        print(KEEP_IT_ELSEWHERE)


def _many(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def cmd_audit_checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    """Write checkpoints until the whole ledger is covered; print the head."""
    from infrastructure.audit.checkpoints import Checkpointer, head

    database = _database(settings)
    try:
        engine = database.engine()
        before = head(engine)
        after = Checkpointer(engine).catch_up()
    finally:
        database.close()
    written = (after.seq if after else 0) - (before.seq if before else 0)
    print(f"wrote {_many(written, 'checkpoint')}")
    print(describe_head(after))
    if after is not None:
        print(KEEP_IT_ELSEWHERE)
    return 0


def add_commands(commands: Any) -> Any:
    """Register ``idemsync audit`` with ``verify`` and ``checkpoint``; return
    the group's subparsers (``add_parser`` adds more subcommands)."""
    audit = commands.add_parser(
        "audit", help="tamper evidence: the ledger's hashes and checkpoints"
    )
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_commands.add_parser(
        "verify",
        help="recompute every hash and checkpoint; exit 1 on any finding",
        description="Recompute every event's chained hash and every "
        "checkpoint, and name each event modified, deleted or inserted behind "
        "the engine's back and each checkpoint that differs (exit 1). Prints "
        "the head checkpoint: keep it outside the database.",
    )
    verify.add_argument(
        "--anchor",
        type=_anchor,
        metavar="SEQ:HASH",
        help="a checkpoint kept outside the database (as printed by an earlier "
        "verify or checkpoint): it must still be there, unchanged",
    )
    verify.set_defaults(run=cmd_audit_verify, secrets=False)
    audit_commands.add_parser(
        "checkpoint",
        help="write checkpoints up to the end of the log; print the head",
    ).set_defaults(run=cmd_audit_checkpoint, secrets=False)
    return audit_commands
