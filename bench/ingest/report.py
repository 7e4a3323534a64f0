"""The ingest figures as JSON: the environment, each backend's figures,
the load generator's headroom, and the issue's targets with their verdicts."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from bench.ingest.figures import Backend, Run
from bench.ingest.options import Options
from bench.ingest.wrk import OPEN_LOOP_LIMIT, wrk_version

TARGETS = {
    "unique_vs_ceiling": 0.5,
    "duplicate_vs_unique": 5.0,
    "p99_at_80_ms": 50.0,
    "stored_vs_empty": 0.9,
}


def environment() -> dict[str, Any]:
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "eventsourcing": version("eventsourcing"),
        "psycopg": version("psycopg"),
        "uvicorn": version("uvicorn"),
        "starlette": version("starlette"),
    }
    try:
        found["wrk"] = wrk_version()
    except OSError:
        found["wrk"] = None
    for module in ("uvloop", "httptools"):
        try:
            found[module] = version(module)
        except Exception:
            found[module] = None
    return found


def report(
    loadgen: Run, results: Sequence[Backend], options: Options
) -> dict[str, Any]:
    backends = {result.backend: result.to_json() for result in results}
    out: dict[str, Any] = {
        "benchmark": "ingest",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {
            "duration_seconds": options.duration,
            "connections": options.connections,
            "raw_levels": options.raw_levels,
            "raw_duration_seconds": options.raw_duration,
            "wrk_threads": options.threads,
            "postgres_server_workers": options.pg_workers,
            "projections_in_serve": options.in_serve,
            "personal_fields": options.personal,
            "master_key": options.master_key,
            "server_log_level": options.log_level,
            "duplicate_pool": options.duplicates,
            "stored_events": options.stored_events,
        },
        "definitions": {
            "unique": "order.created of a new order per request (1 deliveries "
            "row + 3 events + 3 event_audit rows), wrk closed loop",
            "duplicate": "already-applied deliveries re-signed with a later "
            "timestamp, cycled",
            "unique_at_80_percent": "fresh deliveries at a constant arrival "
            "rate of 80% of the unique maximum (bench/open_loop.py, up to "
            f"{OPEN_LOOP_LIMIT} connections), each timed from when it was due",
            "ceiling": "raw psycopg, one delivery's rows per transaction "
            "(SET LOCAL lock_timeout, LOCK TABLE idemsync_events IN EXCLUSIVE "
            "MODE, NOTIFY, unnest(stored_event_uuid[]) insert, event_audit "
            "rows, deliveries row), pipelined, from N processes; sqlite: "
            "raw sqlite3, one writer",
            "cpu_cores": "CPU time / wall time of each process group during "
            "the run (1.0 = one core)",
            "server_rss_mb": "RSS summed over idemsync serve's process tree",
        },
        "environment": environment(),
        "load_generator": loadgen.to_json(),
        "backends": backends,
    }
    out["load_generator_headroom"] = headroom(out)
    out["targets"] = targets(out)
    return out


def headroom(ingest: dict[str, Any]) -> dict[str, Any]:
    """How much of one core wrk needs for idemsync's best figure, from its
    CPU time per request against the no-op server, and how far its own
    ceiling (requests per CPU-second of one wrk thread) is above that."""
    per_cpu = ingest["load_generator"].get("wrk_requests_per_cpu_second") or 0.0
    best = 0.0
    for figures in ingest["backends"].values():
        for kind in ("unique", "duplicate"):
            found = best_of(figures.get(kind))
            if found:
                best = max(best, found["per_second"])
    return {
        "wrk_requests_per_cpu_second": per_cpu,
        "best_idemsync_per_second": best,
        "wrk_cores_at_best": round(best / per_cpu, 3) if per_cpu else None,
        "ceiling_over_best": round(per_cpu / best, 1) if best else None,
    }


def best_of(section: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if not section else section.get("best")


def strongest_ceiling(pg: dict[str, Any]) -> dict[str, Any] | None:
    """The ceiling the unique figure is held against: the best raw run at any
    concurrency, with or without the recorder's table lock, from Python or
    from ``pgbench`` (raw transactions doing the same writes). The
    table-locked runs are what idemsync's own recorder allows, not what
    PostgreSQL can do."""
    runs = [
        run
        for run in (
            best_of(pg.get("ceiling")),
            best_of(pg.get("ceiling_no_table_lock")),
            best_of(pg.get("ceiling_pgbench")),
        )
        if run
    ]
    return max(runs, key=lambda run: run["per_second"]) if runs else None


def targets(
    ingest: dict[str, Any] | None, rebuild_ratio: float | None = None
) -> list[dict[str, Any]]:
    """The issue's targets (PostgreSQL): each figure, its ratio, PASS/MISS
    (or NOT RUN when its figures are missing)."""
    pg = (ingest or {}).get("backends", {}).get("postgres") or {}
    unique = best_of(pg.get("unique"))
    ceiling = strongest_ceiling(pg)
    duplicate = best_of(pg.get("duplicate"))
    at_80 = pg.get("unique_at_80_percent")
    stored = pg.get("unique_with_stored_events")

    def row(
        name: str, figure: str, value: float | None, limit: float, higher: bool
    ) -> dict[str, Any]:
        if value is None:
            verdict = "NOT RUN"
        else:
            verdict = (
                "PASS" if (value >= limit if higher else value <= limit) else "MISS"
            )
        return {
            "target": name,
            "figures": figure,
            "value": None if value is None else round(value, 3),
            "limit": f"{'>=' if higher else '<='} {limit:g}",
            "verdict": verdict,
        }

    missing: tuple[str, float | None] = ("-", None)
    against_ceiling = missing
    if unique and ceiling:
        against_ceiling = (
            f"{unique['per_second']:,.0f} / {ceiling['per_second']:,.0f} per s",
            unique["per_second"] / ceiling["per_second"],
        )
    against_unique = missing
    if unique and duplicate:
        against_unique = (
            f"{duplicate['per_second']:,.0f} / {unique['per_second']:,.0f} per s",
            duplicate["per_second"] / unique["per_second"],
        )
    loaded = missing
    if at_80:
        loaded = (
            f"{at_80['per_second']:,.0f} per s = {at_80['fraction_of_max']:.0%} "
            f"of max, p99 {at_80['p99_ms']:.1f} ms",
            at_80["p99_ms"],
        )
    rebuilt = (
        "-" if rebuild_ratio is None else "bench/rebuild.py, postgres",
        rebuild_ratio,
    )
    stored_name = "ingest with 10M events stored / empty (--stored-events N)"
    against_empty = missing
    if stored and unique:
        same = [
            r for r in pg["unique"]["runs"] if r["connections"] == stored["connections"]
        ]
        empty = same[0] if same else unique
        stored_name = f"ingest with {stored['stored_events']:,} events stored / empty"
        against_empty = (
            f"{stored['per_second']:,.0f} / {empty['per_second']:,.0f} per s",
            stored["per_second"] / empty["per_second"],
        )
    rows = [
        row(
            "unique ingest / strongest raw ceiling",
            *against_ceiling,
            TARGETS["unique_vs_ceiling"],
            True,
        ),
        row(
            "duplicate / unique ingest",
            *against_unique,
            TARGETS["duplicate_vs_unique"],
            True,
        ),
        row(
            "p99 at 80% of max throughput (ms)",
            *loaded,
            TARGETS["p99_at_80_ms"],
            False,
        ),
        row("rebuild / read+decode", *rebuilt, 0.3, True),
        row(stored_name, *against_empty, TARGETS["stored_vs_empty"], True),
    ]
    return rows
