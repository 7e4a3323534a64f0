"""Audit from the command line (specification §7): ``idemsync history TYPE
ID``, ``idemsync deliveries show SOURCE KEY`` and ``idemsync audit export``.

They read the same ``AuditTrail`` as ``/audit``, so the CLI and the API give
the same answers; nothing here needs the server.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from idemsync.common import check_ready
from infrastructure.audit.trail import AmbiguousObject, AuditTrail, UnknownAggregate
from infrastructure.settings import Settings


@contextmanager
def audit_trail(settings: Settings) -> Iterator[AuditTrail]:
    """The audit trail of the configured store, closed afterwards."""
    from infrastructure.bootstrap import bootstrap

    check_ready(settings)
    services = bootstrap(settings, deliveries=False)
    try:
        yield services.audit
    finally:
        services.close()


def _summary(event: dict[str, Any]) -> str:
    """The part of an event's data a reader wants in one line."""
    data = event["data"]
    for name in ("changes", "command", "keys"):
        if name in data:
            return msgspec.json.encode(data[name]).decode()
    return msgspec.json.encode(data).decode()


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    with audit_trail(settings) as trail:
        try:
            events = list(_all_events(trail, args.type, args.id, args.namespace))
        except (UnknownAggregate, AmbiguousObject) as unknown:
            print(f"idemsync: {unknown}", file=sys.stderr)
            return 2
    if not events:
        print(f"idemsync: no {args.type} {args.id!r}", file=sys.stderr)
        return 1
    if args.json:
        for event in events:
            sys.stdout.write(msgspec.json.encode(event).decode() + "\n")
        return 0
    namespace = events[0]["aggregate"]["namespace"]
    table = Table(title=f"{args.type} {args.id} (namespace {namespace})")
    for column in ("v", "recorded at", "event", "delivery", "occurred at", "data"):
        table.add_column(column, overflow="fold")
    for event in events:
        delivery = event["delivery"]
        table.add_row(
            str(event["aggregate"]["version"]),
            event["recorded_at"],
            event["type"],
            "" if delivery is None else f"{delivery['source']}/{delivery['key']}",
            event["occurred_at"] or "",
            _summary(event),
        )
    Console().print(table)
    return 0


def _all_events(
    trail: AuditTrail, kind: str, object_id: str, namespace: str | None
) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        page = trail.events_of(kind, object_id, after, 1000, namespace)
        if page is None:
            return
        yield from page["events"]
        if page["next_cursor"] is None:
            return
        after = page["next_cursor"]


def cmd_deliveries_show(args: argparse.Namespace, settings: Settings) -> int:
    with audit_trail(settings) as trail:
        found = trail.delivery(args.source, args.key)
    if found is None:
        print(
            f"idemsync: no delivery {args.key!r} from source {args.source!r}",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(found)).decode() + "\n")
    return 0


def cmd_audit_export(args: argparse.Namespace, settings: Settings) -> int:
    """The global log as NDJSON on stdout, from ``--since`` (recorded time) or
    ``--after`` (position), with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    start = time.monotonic()
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    with audit_trail(settings) as trail:
        after = args.after
        if args.since is not None:
            after = max(after, trail.first_position_since(args.since))
        head = trail.head()
        columns = (
            TextColumn("exporting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>10} events/s"),
        )
        with Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task("export", total=max(head - after, 0), rate="")
            count = 0
            for event in trail.log(after):
                out.write(encoder.encode(event) + b"\n")
                count += 1
                if count % 1000 == 0:
                    rate = f"{count / (time.monotonic() - start):,.0f}"
                    progress.update(
                        task, completed=event["position"] - after, rate=rate
                    )
            progress.update(task, completed=max(head - after, 0))
    out.flush()
    print(f"exported {count} events", file=sys.stderr)
    return 0


def add_history_command(commands: Any) -> None:
    """Register ``idemsync history``."""
    history = commands.add_parser("history", help="the events of one object")
    history.add_argument("type", help="order, customer or payment")
    history.add_argument("id", help="the partner's id of the object")
    history.add_argument(
        "--namespace",
        help="the object's namespace (needed when the id is in several; "
        "default: the one that has it)",
    )
    history.add_argument("--json", action="store_true", help="one JSON per line")
    history.set_defaults(run=cmd_history, secrets=False)


def add_show_command(delivery_commands: Any) -> None:
    """Register ``idemsync deliveries show``."""
    show = delivery_commands.add_parser(
        "show", help="one delivery: its answer, payload and the events it caused"
    )
    show.add_argument("source", help="the source's name, as in the webhook's URL")
    show.add_argument("key", help="the delivery's idempotency key")
    show.set_defaults(run=cmd_deliveries_show, secrets=False)


def add_export_command(audit_commands: Any) -> None:
    """Register ``idemsync audit export``."""
    from idemsync.cli_deliveries import moment

    export = audit_commands.add_parser(
        "export", help="the global event log as NDJSON on stdout"
    )
    export.add_argument(
        "--since",
        type=moment,
        help="from the first event recorded at or after this ISO 8601 time",
    )
    export.add_argument(
        "--after", type=int, default=0, help="from the event after this position"
    )
    export.set_defaults(run=cmd_audit_export, secrets=False)
