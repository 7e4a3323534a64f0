"""Every ingest figure: the load generator's ceiling (wrk against the no-op
server), then each backend's (``bench/ingest/backend.py``)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.databases import postgres_database, sqlite_database, unreachable
from bench.ingest.backend import Bench
from bench.ingest.figures import Backend, Run
from bench.ingest.noop import noop
from bench.ingest.options import Options
from bench.ingest.report import report
from bench.ingest.signing import unique_batch
from bench.ingest.wrk import as_run, run_wrk


def noop_ceiling(directory: Path, options: Options) -> Run:
    """wrk, the Lua script and a file of unique signed requests against a
    server that answers without reading them."""
    top = max(options.connections)
    with noop(directory) as (host, process):
        batch = unique_batch(directory, host, "noop", 20_000, options.threads)
        found = run_wrk(
            directory,
            f"http://{host}",
            batch,
            top,
            options.duration,
            {"server": lambda: [process.pid]},
            threads=options.threads,
        )
        for path in batch.files:
            path.unlink()
    per_cpu = found.requests / found.wrk_cpu_seconds if found.wrk_cpu_seconds else 0.0
    return as_run(
        "wrk -> no-op server",
        "-",
        top,
        found,
        wrk_requests_per_cpu_second=round(per_cpu, 1),
    )


def measure(backends: Sequence[str], options: Options) -> dict[str, Any]:
    """Every figure: the load generator's ceiling, then each backend."""
    with tempfile.TemporaryDirectory(prefix="idemsync-ingest-") as name:
        directory = Path(name)
        print("load generator: wrk against a no-op server", file=sys.stderr, flush=True)
        loadgen = noop_ceiling(directory, options)
        results = []
        for backend in backends:
            print(f"{backend}: ingest", file=sys.stderr, flush=True)
            results.append(measure_backend(backend, directory, options))
    return report(loadgen, results, options)


def measure_backend(backend: str, directory: Path, options: Options) -> Backend:
    work = directory / backend
    work.mkdir()
    if backend == "sqlite":
        with sqlite_database() as database:
            database.upgrade()
            return Bench(backend, database, work, options).run()
    error = unreachable(options.postgres)
    if error is not None:
        return Backend(
            backend, skipped=f"not reachable at {options.postgres}: {error}".strip()
        )
    with postgres_database(options.postgres) as database:
        database.upgrade()
        try:
            return Bench(backend, database, work, options).run()
        finally:
            database.close()
