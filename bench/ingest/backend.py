"""One backend's figures against a running ``idemsync serve``
(``bench/ingest/server.py``): unique ingest at each connection count, 80 %
load (open loop), duplicates, ``GET /healthz``; then its raw ceiling and,
with ``--stored-events``, unique ingest on a filled store."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from bench import bulk_store
from bench.databases import postgres_database, sqlite_database
from bench.ingest.ceiling import (
    PGBENCH_CLIENTS,
    pgbench_ceiling,
    postgres_ceiling,
    sqlite_ceiling,
)
from bench.ingest.figures import Backend, Run
from bench.ingest.options import Options
from bench.ingest.prefill import prefill, store_counts
from bench.ingest.sampling import postgres_pids, rss_mb
from bench.ingest.server import bench_server, start, stop
from bench.ingest.signing import (
    Batch,
    get_batch,
    retry_batch,
    send_all,
    unique_batch,
    unique_body,
)
from bench.ingest.templates import read_templates
from bench.ingest.wrk import OPEN_LOOP_LIMIT, WrkResult, as_run, run_open_loop, run_wrk
from infrastructure.persistence.database import Database
from projections.catalog import all_projections


class Bench:
    """The figures of one backend, against one running server."""

    def __init__(
        self, backend: str, database: Database, directory: Path, options: Options
    ) -> None:
        self.backend = backend
        self.database = database
        self.directory = directory
        self.options = options
        workers = options.pg_workers if database.is_postgres else 1
        self.result = Backend(backend, workers)
        self.server = bench_server(
            directory,
            database,
            workers,
            in_serve=options.in_serve,
            log_level=options.log_level,
            master_key=options.master_key,
        )
        self.tags = 0
        self.rate_guess = 2000.0

    def groups(self) -> dict[str, Callable[[], list[int]]]:
        groups: dict[str, Callable[[], list[int]]] = {"server": self.server.pids}
        if self.database.is_postgres:
            groups["postgres"] = lambda: postgres_pids(self.database.url)
        return groups

    def tag(self, kind: str) -> str:
        self.tags += 1
        return f"{self.backend[:2]}{kind}{self.tags:03d}"

    def settle(self, run: Run | None = None, timeout: float = 300.0) -> None:
        """Wait until the server's projections have caught up with the log,
        so that one run's backlog is not the next run's load; how long that
        took goes into ``run`` (a long wait means the run went faster than
        the read models can follow). Checkpoints are not waited for: each
        covers at most 10 s of ledger rows, a fraction of a second's work."""
        began = time.monotonic()
        engine = self.database.engine()
        names = list(all_projections())
        marks = ", ".join(f":n{i}" for i in range(len(names)))
        behind = text(
            "SELECT (SELECT coalesce(max(notification_id), 0) FROM event_audit) "
            "- (SELECT coalesce(min(position), 0) FROM projection_positions "
            f"WHERE name IN ({marks}))"
        )
        params = {f"n{i}": name for i, name in enumerate(names)}
        while time.monotonic() - began < timeout:
            with engine.connect() as conn:
                if int(conn.execute(behind, params).scalar() or 0) <= 0:
                    break
            time.sleep(0.1)
        if run is not None:
            run.extra["caught_up_after_s"] = round(time.monotonic() - began, 1)

    def wrk(self, batch: Batch, connections: int, duration: float) -> WrkResult:
        return run_wrk(
            self.directory,
            self.server.base_url,
            batch,
            connections,
            duration,
            self.groups(),
            threads=self.options.threads,
        )

    def unique(self, connections: int, duration: float) -> WrkResult:
        """Fresh deliveries only: sized from the expected rate, and run again
        larger if wrk ran out of them (it would have sent some twice)."""
        count = int(self.rate_guess * 1.5 * duration) + 200 * connections
        while True:
            batch = unique_batch(
                self.directory,
                self.server.host,
                self.tag("u"),
                count,
                self.options.threads,
                self.options.personal,
            )
            result = self.wrk(batch, connections, duration)
            for path in batch.files:
                path.unlink()
            if result.wrapped == 0:
                return result
            print(
                f"  {count} unique requests were too few: again with more",
                file=sys.stderr,
            )
            self.rate_guess = max(self.rate_guess, result.requests / result.seconds)
            count = int(result.requests * 2.5) + 1000

    def run(self) -> Backend:
        options, result = self.options, self.result
        began = time.monotonic()
        start(self.server)
        print(
            f"  {self.backend}: serving ({self.server.workers} worker(s)) after "
            f"{time.monotonic() - began:.1f} s; calibrating, sending the "
            f"{options.duplicates} deliveries to repeat",
            file=sys.stderr,
            flush=True,
        )
        try:
            time.sleep(0.5)
            result.rss_idle_mb = rss_mb(self.server.pids())
            top = max(options.connections)
            # Calibrate (and warm up): the rate at the most connections.
            calibration = self.unique(top, max(1.0, options.duration / 4))
            self.rate_guess = max(200.0, calibration.requests / calibration.seconds)
            # The deliveries that will be sent again as duplicates: sent
            # once each, untimed, until every one is answered 2xx.
            tag = self.tag("s")
            seed = Batch(
                tag,
                options.duplicates,
                [
                    (f"msg_{tag}_{i:07d}", unique_body(tag, i))
                    for i in range(options.duplicates)
                ],
            )
            send_all(self.server.port, self.server.host, seed.bodies)
            self.settle()
            for connections in options.connections:
                print(
                    f"  {self.backend}: unique, {connections} connections",
                    file=sys.stderr,
                    flush=True,
                )
                found = self.unique(connections, options.duration)
                result.unique.append(as_run("unique", self.backend, connections, found))
                self.settle(result.unique[-1])
                self.rate_guess = max(self.rate_guess, found.requests / found.seconds)
            result.at_80 = self.at_80()
            self.settle(result.at_80)
            retries = retry_batch(
                self.directory, self.server.host, seed, options.threads
            )
            for connections in options.connections:
                print(
                    f"  {self.backend}: duplicate, {connections} connections",
                    file=sys.stderr,
                    flush=True,
                )
                found = self.wrk(retries, connections, options.duration)
                result.duplicate.append(
                    as_run(
                        "duplicate",
                        self.backend,
                        connections,
                        found,
                        pool=options.duplicates,
                    )
                )
            health = get_batch(
                self.directory, self.server.host, "/healthz", options.threads
            )
            # One connection: the HTTP stack's latency floor; the most: its
            # throughput.
            for connections in sorted({1, top}):
                found = self.wrk(health, connections, options.duration)
                result.healthz.append(
                    as_run("GET /healthz", self.backend, connections, found)
                )
            result.store = store_counts(self.database)
        finally:
            stop(self.server)
        # The ceiling before a fill: the fill leaves PostgreSQL flushing
        # gigabytes for minutes, which would lower it.
        self.ceiling()
        if options.stored_events and self.database.is_postgres:
            self.with_stored_events()
        return result

    def at_80(self) -> Run | None:
        """The latency a partner sees at 80 % of the maximum throughput:
        fresh deliveries arriving at a constant rate, 0.8 x the best unique
        rate, each timed from when it was due (``bench/open_loop.py``)."""
        best = Backend.best(self.result.unique)
        if best is None:
            return None
        target = 0.8 * best.per_second
        duration = self.options.duration
        print(
            f"  {self.backend}: 80% load, open loop at {target:.0f} per s",
            file=sys.stderr,
            flush=True,
        )
        batch = unique_batch(
            self.directory,
            self.server.host,
            self.tag("o"),
            int(target * duration) + 100,
            1,
            self.options.personal,
        )
        found = run_open_loop(
            self.server.base_url,
            batch,
            target,
            duration,
            self.groups(),
            OPEN_LOOP_LIMIT,
        )
        for path in batch.files:
            path.unlink()
        return as_run(
            "unique at 80% load",
            self.backend,
            OPEN_LOOP_LIMIT,
            found,
            target_per_second=round(target, 1),
            fraction_of_max=round(found.requests / found.seconds / best.per_second, 3),
            open_loop=True,
        )

    def with_stored_events(self) -> None:
        """Fill the store (``bench/bulk_store.py``: a template written by the
        engine, cloned by ``COPY``), restart the server, unique ingest again."""
        options, result = self.options, self.result
        best = Backend.best(result.unique)
        assert best is not None
        print(
            f"  {self.backend}: template of {options.template_events:,} events "
            "through SyncService",
            file=sys.stderr,
        )
        with postgres_database(options.postgres) as scratch:
            scratch.upgrade()
            made = prefill(scratch, options.template_events, options.prefill_processes)
            template = bulk_store.read_template(scratch.url)
        print(
            f"  {self.backend}: cloning it to {options.stored_events:,} more events",
            file=sys.stderr,
        )
        filled = bulk_store.fill(
            self.database, options.stored_events, template, options.prefill_processes
        )
        result.prefill = {"template": made, **filled, "how": bulk_store.HOW}
        result.stored_events = store_counts(self.database)["events"]
        start(self.server)
        try:
            self.unique(best.connections, max(1.0, options.duration / 4))  # warm up
            self.settle()
            found = self.unique(best.connections, options.duration)
            result.stored = as_run(
                f"unique, {result.stored_events:,} events stored",
                self.backend,
                best.connections,
                found,
                stored_events=result.stored_events,
            )
            self.settle(result.stored)
        finally:
            stop(self.server)

    def ceiling(self) -> None:
        """Raw writes of what one of this server's deliveries wrote, into a
        fresh database of the same backend."""
        options, result = self.options, self.result
        templates = read_templates(self.database)
        if not self.database.is_postgres:
            with sqlite_database() as scratch:
                scratch.upgrade()
                print("  sqlite: raw sqlite3 ceiling", file=sys.stderr, flush=True)
                result.ceiling.append(
                    sqlite_ceiling(scratch.sqlite_path, templates, options.raw_duration)
                )
            return
        with postgres_database(options.postgres) as scratch:
            scratch.upgrade()
            for lock in (True, False):
                for processes in options.raw_levels:
                    print(
                        f"  postgres: raw psycopg, {processes} connections"
                        + ("" if lock else ", no table lock"),
                        file=sys.stderr,
                        flush=True,
                    )
                    run = postgres_ceiling(
                        scratch.url, templates, processes, options.raw_duration, lock
                    )
                    (result.ceiling if lock else result.ceiling_no_lock).append(run)
            if shutil.which("pgbench") is None:
                print(
                    "  postgres: no pgbench on PATH: no C-client ceiling",
                    file=sys.stderr,
                )
                return
            for clients in PGBENCH_CLIENTS:
                print(
                    f"  postgres: pgbench, {clients} clients",
                    file=sys.stderr,
                    flush=True,
                )
                result.ceiling_pgbench.append(
                    pgbench_ceiling(scratch.url, clients, options.raw_duration)
                )
