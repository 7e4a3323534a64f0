"""``python -m tests.chaos --duration 600`` (``make chaos DURATION=600``): the
long chaos run, on PostgreSQL then SQLite, each sending its script for
``--duration`` seconds (the script grows with it), then the summary table.
Exit 1 when a check failed. PostgreSQL is ``IDEMSYNC_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432``); the run makes its own database
and drops it at the end (``--keep`` keeps it and the logs)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from infrastructure.persistence.database import Database
from tests.chaos.scenario import (
    Options,
    Report,
    dump,
    postgres_restart_command,
    print_report,
    run,
)

PG_SERVER = os.environ.get("IDEMSYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def pg_execute(statement: str) -> None:
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument(
        "--sends", type=int, help="a fixed-size script instead of --duration"
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=("postgres", "sqlite"),
        help="repeatable; default both",
    )
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    backends = args.backend or ["postgres", "sqlite"]
    root = Path(tempfile.mkdtemp(prefix="idemsync-chaos-"))
    print(f"seed {args.seed}; logs in {root}", flush=True)
    reports: list[Report] = []
    failed = False
    for backend in backends:
        directory = root / backend
        if backend == "postgres":
            name = f"idemsync_chaos_{os.getpid()}"
            pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            pg_execute(f"CREATE DATABASE {name}")
            url = f"{PG_SERVER}/{name}"
            options = Options(
                backend=backend,
                database_url=url,
                directory=directory,
                seed=args.seed,
                sends=args.sends,
                duration=None if args.sends else args.duration,
                servers=2,
                workers=2,
                threads=args.threads,
                postgres_restart=postgres_restart_command(),
                log=lambda line: print(line, flush=True),
            )
        else:
            directory.mkdir(parents=True)
            url = f"sqlite:///{directory / 'idemsync.db'}"
            options = Options(
                backend=backend,
                database_url=url,
                directory=directory,
                seed=args.seed,
                sends=args.sends,
                duration=None if args.sends else args.duration,
                servers=1,
                workers=1,
                threads=max(2, args.threads // 2),
                log=lambda line: print(line, flush=True),
            )
        database = Database(url)
        database.upgrade()
        database.close()
        try:
            report = run(options)
        finally:
            if backend == "postgres" and not args.keep:
                pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        dump(report, root / f"{backend}-report.json")
        print_report([report])
        reports.append(report)
        failed |= bool(report.problems)
    if len(reports) > 1:
        print_report(reports)
    print(f"seed {args.seed}; reports in {root}/*-report.json", flush=True)
    if not failed and not args.keep:
        for backend in backends:
            shutil.rmtree(root / backend, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
