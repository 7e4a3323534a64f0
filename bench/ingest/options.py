"""The ingest benchmark's options: the dataclass its measurement reads,
and the command-line arguments that fill it (also ``bench/run.py``'s)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from bench.databases import DEFAULT_PG, add_postgres_argument


@dataclass
class Options:
    """What to measure, and how long (``add_arguments`` says what each is)."""

    duration: float = 10.0
    connections: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    raw_levels: list[int] = field(default_factory=lambda: [1, 4, 8, 16])
    raw_duration: float = 5.0
    threads: int = 1
    pg_workers: int = 2
    in_serve: bool = True
    log_level: str = "info"
    duplicates: int = 5000
    stored_events: int = 0
    prefill_processes: int = 3
    template_events: int = 20_000
    postgres: str = DEFAULT_PG
    personal: bool = False
    master_key: bool = False


def integers(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive integers expected: {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ingest benchmark (also ``bench/run.py``'s)."""
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per wrk run"
    )
    parser.add_argument(
        "--connections",
        type=integers,
        default=[1, 4, 16, 64],
        help="wrk connection counts",
    )
    parser.add_argument(
        "--raw-levels",
        type=integers,
        default=[1, 4, 8, 16],
        help="raw psycopg connection counts",
    )
    parser.add_argument(
        "--raw-duration", type=float, default=5.0, help="seconds per raw run"
    )
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument(
        "--pg-workers",
        type=int,
        default=2,
        help="idemsync serve --workers on PostgreSQL",
    )
    parser.add_argument(
        "--no-projections",
        action="store_true",
        help="[projections] in_serve = false (default: the shipped true)",
    )
    parser.add_argument("--server-log-level", default="info")
    parser.add_argument(
        "--duplicates", type=int, default=5000, help="deliveries cycled as duplicates"
    )
    parser.add_argument(
        "--stored-events",
        type=int,
        default=0,
        help="PostgreSQL: also measure unique ingest after adding N events",
    )
    parser.add_argument("--prefill-processes", type=int, default=3)
    parser.add_argument(
        "--template-events",
        type=int,
        default=20_000,
        help="events written through SyncService, then cloned (--stored-events)",
    )
    parser.add_argument(
        "--personal",
        action="store_true",
        help="every fourth unique delivery is a customer.upserted with personal "
        "fields (default: order.created only, issue 11's mix)",
    )
    parser.add_argument(
        "--master-key",
        action="store_true",
        help="[privacy] master_key set: personal fields are sealed (with --personal)",
    )
    add_postgres_argument(parser)


def options_of(args: argparse.Namespace) -> Options:
    return Options(
        duration=args.duration,
        connections=args.connections,
        raw_levels=args.raw_levels,
        raw_duration=args.raw_duration,
        threads=args.wrk_threads,
        pg_workers=args.pg_workers,
        in_serve=not args.no_projections,
        personal=args.personal,
        master_key=args.master_key,
        log_level=args.server_log_level,
        duplicates=args.duplicates,
        stored_events=args.stored_events,
        prefill_processes=args.prefill_processes,
        template_events=args.template_events,
        postgres=args.postgres,
    )
