"""The ``idemsync`` command line: serve, migrate, check, try it out."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import logging.config
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from idemsync import (
    cli_audit,
    cli_deliveries,
    cli_history,
    cli_privacy,
    cli_projections,
    cli_tokens,
)
from idemsync.common import build_sources, describe_source
from infrastructure.file_modes import loose_files
from infrastructure.persistence.database import Database, NotReady
from infrastructure.schemes.standard_webhooks import sign
from infrastructure.settings import ConfigError, Settings, load_settings

log = logging.getLogger("idemsync")


def port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (bound the way uvicorn binds
    it), else None: said before the server starts, not as uvicorn's bare
    errno after its startup lines."""
    try:
        with socket.create_server((host, port), reuse_port=False) as _:
            return None
    except OSError as problem:
        return problem.strerror or str(problem)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from infrastructure.logs import FIELDS, log_config
    from web.transport import http_protocol

    # Before uvicorn applies it: the warnings at start are in the log's format.
    logging.config.dictConfig(log_config(args.log_format, args.log_level))
    build_sources(settings)
    for loose in loose_files(settings):
        log.warning("%s", loose)
    database = Database.of(settings)
    try:
        database.check_ready()
        pinned = database.pinned_namespaces()
    except NotReady as problem:
        print(f"idemsync: cannot serve: {problem}", file=sys.stderr)
        return 2
    finally:
        database.close()
    for source in settings.sources.values():
        fields = {
            "source": source.name,
            "scheme": source.scheme,
            "mapping": source.mapping,
            "mapping_is_default": source.mapping_is_default,
            "namespace": source.namespace_of(pinned)[0],
        }
        log.info("source %s", describe_source(source, pinned), extra={FIELDS: fields})
    try:
        protocol = http_protocol(args.http)
    except RuntimeError as problem:
        print(f"idemsync: cannot serve: {problem}", file=sys.stderr)
        return 2
    if args.workers > 1 and not database.is_postgres:
        log.warning("SQLite serves one process; use PostgreSQL for several workers")
    taken = port_taken(args.host, args.port)
    if taken is not None:
        print(
            f"idemsync: cannot serve: {args.host}:{args.port}: {taken} "
            "(another server on that port? pick one with --port)",
            file=sys.stderr,
        )
        return 2
    with metrics_directory(args.workers):
        uvicorn.run(
            "web.app:create_app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            log_config=log_config(args.log_format, args.log_level),
            http=protocol,
        )
    return 0


@contextmanager
def metrics_directory(workers: int) -> Iterator[None]:
    """With several workers, a directory where each writes its metrics for
    ``/metrics`` to sum (prometheus-client's multiprocess mode). It must be
    named before any worker imports prometheus-client: workers are new
    processes that inherit it. ``PROMETHEUS_MULTIPROC_DIR`` if set (emptied
    first), else a temporary directory removed at the end."""
    if workers < 2:
        yield
        return
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    directory = Path(given) if given else Path(tempfile.mkdtemp(prefix="idemsync-"))
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(directory, ignore_errors=True)


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    database = Database.of(settings)
    database.upgrade()
    print(f"{database.describe()} is at revision {database.current_revision()}")
    database.close()
    return 0


def cmd_db_current(args: argparse.Namespace, settings: Settings) -> int:
    database = Database.of(settings)
    current, head = database.current_revision(), database.head_revision()
    print(f"{database.describe()}: revision {current or 'none'} (head {head})")
    database.close()
    return 0 if current == head else 1


def cmd_config_check(args: argparse.Namespace, settings: Settings) -> int:
    build_sources(settings)
    loose = loose_files(settings)
    for file in loose:
        print(f"idemsync: warning: {file}", file=sys.stderr)
    if loose and args.strict:
        print(
            f"idemsync: refused (--strict): {len(loose)} file(s) other users "
            "may read or write",
            file=sys.stderr,
        )
        return 1
    names = ", ".join(settings.sources) or "none"
    print(f"{settings.config_path}: ok; sources: {names}")
    pinned = store_pins(settings)
    for source in settings.sources.values():
        print(describe_source(source, pinned))
    if settings.master_key is None:
        print(
            "privacy: no master key: personal fields are stored in clear "
            "(docs/privacy.md)"
        )
    else:
        print(
            f"privacy: personal fields sealed, master key {settings.master_key.key_id}"
        )
    return 0


def store_pins(settings: Settings) -> dict[str, str] | None:
    """The store's namespace pins, or None when it cannot be read (no store
    yet, not migrated, or down: ``config check`` does not need it)."""
    database = Database.of(settings)
    try:
        database.check_ready()
        return database.pinned_namespaces()
    except Exception:
        return None
    finally:
        database.close()


def cmd_demo_request(args: argparse.Namespace, settings: Settings) -> int:
    """Print a curl command that sends a signed ``order.created`` right now."""
    source = settings.sources.get(args.source)
    if source is None or source.scheme != "standard-webhooks":
        print(f"idemsync: no standard-webhooks source {args.source!r}", file=sys.stderr)
        return 2
    order_id = f"ord_{uuid.uuid4().hex[:8]}"
    body = json.dumps(
        {
            "type": "order.created",
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": {
                "order_id": order_id,
                "customer_id": "cus_demo",
                "currency": "EUR",
                "total_cents": 4200,
            },
        },
        separators=(",", ":"),
    )
    msg_id, timestamp = f"msg_{uuid.uuid4().hex[:12]}", int(time.time())
    signature = sign(source.secrets[0], msg_id, timestamp, body.encode())
    print(
        f"# A signed webhook for source {source.name!r}, valid for "
        f"{source.tolerance_seconds} s. Send it twice: applied, then duplicate.\n"
        f"curl -s -X POST {args.url}/webhooks/{source.name} \\\n"
        f"  -H 'content-type: application/json' \\\n"
        f"  -H 'webhook-id: {msg_id}' -H 'webhook-timestamp: {timestamp}' \\\n"
        f"  -H 'webhook-signature: {signature}' \\\n"
        f"  --data-raw '{body}'"
    )
    return 0


def package_version() -> str:
    """The installed distribution's version (pyproject.toml's)."""
    try:
        return importlib.metadata.version("idemsync")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="idemsync", description=__doc__)
    root.add_argument(
        "--version", action="version", version=f"idemsync {package_version()}"
    )
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve webhooks over HTTP")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0: every interface)",
    )
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes (default 1; several need PostgreSQL)",
    )
    serve.add_argument(
        "--log-level",
        choices=("critical", "error", "warning", "info", "debug"),
        default="info",
        help="not uvicorn's 'trace': it logs every request's query string as sent",
    )
    serve.add_argument(
        "--http",
        choices=("auto", "httptools", "h11"),
        default="auto",
        help="HTTP/1.1 parser: httptools (C) if installed (default), or h11",
    )
    serve.add_argument(
        "--log-format",
        choices=("json", "text"),
        default="json",
        help="one JSON object per line (default), or plain text",
    )
    serve.set_defaults(run=cmd_serve)

    db = commands.add_parser("db", help="the database schema (Alembic)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="migrate to the head revision").set_defaults(
        run=cmd_db_upgrade, secrets=False
    )
    db_commands.add_parser("current", help="show the revision").set_defaults(
        run=cmd_db_current, secrets=False
    )

    config = commands.add_parser("config", help="the configuration file")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser(
        "check",
        help="validate it",
        description="Validate the configuration and build every source; warn "
        "about a config file or SQLite database that other users may read or "
        "write (group or other write, other read).",
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when there is such a warning",
    )
    check.set_defaults(run=cmd_config_check)

    cli_projections.add_commands(commands)
    cli_deliveries.add_commands(commands)
    cli_tokens.add_commands(commands)
    cli_privacy.add_commands(commands)
    cli_history.add_export_command(cli_audit.add_commands(commands))
    cli_history.add_history_command(commands)

    demo = commands.add_parser("demo-request", help="print a signed example request")
    demo.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="the server's base URL (default http://127.0.0.1:8000)",
    )
    demo.add_argument(
        "--source",
        default="demo",
        help="the source to sign for, with its first secret (default demo)",
    )
    demo.set_defaults(run=cmd_demo_request)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings(resolve_secrets=getattr(args, "secrets", True))
    except ConfigError as error:
        print(f"idemsync: configuration error: {error}", file=sys.stderr)
        return 2
    try:
        code: int = args.run(args, settings)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``idemsync audit export | head``): stop
        # quietly, as a Unix tool killed by SIGPIPE does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except ConfigError as error:
        print(f"idemsync: configuration error: {error}", file=sys.stderr)
        return 2
    except NotReady as problem:
        print(f"idemsync: {problem}", file=sys.stderr)
        return 2
    return code
