"""The ingest figures as a table (also the ``ingest`` rows of
``bench/run.py``'s summary) and the targets' lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.ingest.report import best_of, strongest_ceiling


def cpu_ms_per_request(run: dict[str, Any]) -> dict[str, float]:
    """Milliseconds of CPU per request (delivery, transaction) of the server
    and of the database during ``run`` (none without a rate)."""
    cores = (run.get("usage") or {}).get("cpu_cores", {})
    rate = run.get("per_second") or 0.0
    if rate <= 0:
        return {}
    return {
        name: cores[name] / rate * 1000
        for name in ("server", "postgres", "client")
        if name in cores
    }


def cpu_note(run: dict[str, Any]) -> str:
    usage = run.get("usage")
    if not usage:
        return ""
    names = {"server": "srv", "postgres": "pg", "client": "raw"}
    parts = [f"{names.get(k, k)} {v:.2f}" for k, v in usage["cpu_cores"].items()]
    note = " ".join(parts) + f" busy {usage['machine_busy_fraction']:.0%}"
    per_request = cpu_ms_per_request(run)
    if per_request:
        note += "; ms CPU each: " + " ".join(
            f"{names.get(k, k)} {v:.2f}" for k, v in per_request.items()
        )
    if run.get("caught_up_after_s") is not None:
        note += f"; read models caught up {run['caught_up_after_s']:.1f} s after"
    if run.get("errors"):
        note += f"; {run['errors']:,} ERRORS (not counted)"
    return note


def line(
    section: str,
    name: str,
    backend: str,
    run: dict[str, Any] | None,
    ratio: str = "",
    note: str | None = None,
) -> str:
    if run is None:
        return f"{section:<8} {name:<34} {backend:<9} (not run)"
    return (
        f"{section:<8} {name:<34} {backend:<9}{run['connections']:>6}"
        f"{run['per_second']:>10,.0f}{run['p50_ms']:>9.2f}{run['p99_ms']:>9.2f}"
        f"{ratio:>8}  {cpu_note(run) if note is None else note}"
    )


HEADER = (
    f"{'section':<8} {'measurement':<34} {'backend':<9}{'conns':>6}"
    f"{'per s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}  cpu (cores) during the run"
)


def ingest_lines(ingest: dict[str, Any]) -> list[str]:
    """The ingest figures as table lines (``HEADER``'s columns)."""
    lines = []
    backends = ingest["backends"]
    pg, lite = backends.get("postgres") or {}, backends.get("sqlite") or {}
    for run in (pg.get("ceiling") or {}).get("runs", []):
        lines.append(line("ceiling", "raw psycopg, table lock", "postgres", run))
    for run in (pg.get("ceiling_no_table_lock") or {}).get("runs", []):
        lines.append(line("ceiling", "raw psycopg, no table lock", "postgres", run))
    for run in (pg.get("ceiling_pgbench") or {}).get("runs", []):
        lines.append(line("ceiling", "pgbench (C), no table lock", "postgres", run))
    best_pg = strongest_ceiling(pg)
    if best_pg:
        lines.append(
            line(
                "ceiling",
                "CEILING: strongest of the above",
                "postgres",
                best_pg,
                note=f"{best_pg['name']}; {cpu_note(best_pg)}",
            )
        )
    for run in (lite.get("ceiling") or {}).get("runs", []):
        lines.append(line("ceiling", "raw sqlite3 CEILING, one writer", "sqlite", run))
    loadgen = ingest["load_generator"]
    per_cpu = loadgen.get("wrk_requests_per_cpu_second", 0.0)
    lines.append(
        line(
            "loadgen",
            "wrk -> no-op server",
            "-",
            loadgen,
            note=f"{cpu_note(loadgen)}; wrk: {per_cpu:,.0f} req per CPU-s",
        )
    )
    room = ingest.get("load_generator_headroom") or {}
    if room.get("ceiling_over_best"):
        lines.append(
            f"{'loadgen':<8} wrk needs {room['wrk_cores_at_best']:.3f} cores for "
            f"idemsync's best {room['best_idemsync_per_second']:,.0f} per s: its "
            f"ceiling is {room['ceiling_over_best']:,.0f}x that"
        )
    for backend, figures in backends.items():
        if "skipped" in figures:
            lines.append(f"{'ingest':<8} {backend}: skipped: {figures['skipped']}")
            continue
        for run in figures["healthz"]:
            lines.append(line("loadgen", "wrk -> idemsync GET /healthz", backend, run))
        ceiling = strongest_ceiling(figures)
        for run in figures["unique"]["runs"]:
            lines.append(line("ingest", "unique", backend, run))
        unique = best_of(figures["unique"])
        if unique:
            ratio = (
                f"{unique['per_second'] / ceiling['per_second']:.2f}" if ceiling else ""
            )
            lines.append(
                line("ingest", "unique MAX (ratio: / ceiling)", backend, unique, ratio)
            )
        at_80 = figures["unique_at_80_percent"]
        if at_80:
            lines.append(
                line(
                    "ingest",
                    "unique at 80% load (ratio: / max)",
                    backend,
                    at_80,
                    f"{at_80['fraction_of_max']:.2f}",
                    f"open loop at {at_80['target_per_second']:,.0f} per s; "
                    + cpu_note(at_80),
                )
            )
        for run in figures["duplicate"]["runs"]:
            lines.append(line("ingest", "duplicate", backend, run))
        duplicate = best_of(figures["duplicate"])
        if duplicate and unique:
            ratio = f"{duplicate['per_second'] / unique['per_second']:.2f}"
            lines.append(
                line(
                    "ingest",
                    "duplicate MAX (ratio: / unique)",
                    backend,
                    duplicate,
                    ratio,
                )
            )
        stored = figures.get("unique_with_stored_events")
        if stored and unique:
            same = [
                r
                for r in figures["unique"]["runs"]
                if r["connections"] == stored["connections"]
            ]
            empty = same[0] if same else unique
            ratio = f"{stored['per_second'] / empty['per_second']:.2f}"
            lines.append(
                line(
                    "ingest",
                    f"unique, {stored['stored_events']:,} stored",
                    backend,
                    stored,
                    ratio,
                )
            )
        rss = figures["server_rss_mb"]
        lines.append(
            f"{'memory':<8} {'server RSS (process tree)':<34} {backend:<9}"
            f"{'':>6}{'':>10}{'':>9}{'':>9}{'':>8}  idle {rss['idle']:,.0f} MB, "
            f"peak under load {rss['peak']:,.0f} MB "
            f"({figures['server_workers']} worker(s))"
        )
    return lines


def target_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = [
        f"{'target (PostgreSQL)':<58}{'ratio':>8}  {'limit':<8}{'verdict':<9}figures"
    ]
    out.append("-" * len(out[0]))
    for row in rows:
        value = "-" if row["value"] is None else f"{row['value']:.2f}"
        out.append(
            f"{row['target']:<58}{value:>8}  {row['limit']:<8}"
            f"{row['verdict']:<9}{row['figures']}"
        )
    return out


def table(ingest: dict[str, Any], *, with_targets: bool = True) -> str:
    lines = [HEADER, "-" * (len(HEADER) + 20), *ingest_lines(ingest)]
    if with_targets:
        lines += ["", *target_lines(ingest["targets"])]
    return "\n".join(lines)
