"""Every benchmark in one run on one machine (``make bench``): one table with
ratios and PASS/MISS per target, and every figure in
``bench/results/latest.json``.

It runs, in this order, each writing its own JSON beside ``latest.json``:

1. ``bench/ingest`` (``ingest-latest.json``): the load generator's
   ceiling, then per backend idemsync's HTTP ingest of unique and duplicate
   deliveries through ``idemsync serve``, p99 at 80 % of the maximum, the
   server's RSS, and the raw psycopg / sqlite3 ceiling;
2. ``bench/rebuild.py``'s functions (``rebuild-latest.json``): projection
   replay against raw read-and-decode of the same log, per backend;
3. ``bench/audit.py`` (``audit-latest.json``): the audit trail on a store of
   ``--audit-events`` events (PostgreSQL).

``latest.json`` holds the three reports under ``ingest``, ``rebuild`` and
``audit``, and ``targets``: the issue's targets with their ratios.

    python -m bench.run [--only ingest,rebuild,audit] [--backends sqlite,postgres]
                        [--duration 10] [--connections 1,4,16,64] ...
                        [--rebuild-events 20000] [--audit-events 1000000]
                        [--stored-events N] [--output bench/results/latest.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import audit, rebuild
from bench.databases import add_backends_argument, backends_of
from bench.ingest.measure import measure
from bench.ingest.options import add_arguments, options_of
from bench.ingest.report import environment, targets
from bench.ingest.table import HEADER, ingest_lines, table, target_lines
from bench.ingest.wrk import wrk_problem

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = ("ingest", "rebuild", "audit")


def run_ingest(args: argparse.Namespace, backends: list[str], output: Path) -> Any:
    problem = wrk_problem()
    if problem:
        raise SystemExit(f"bench/run.py: {problem}")
    figures = measure(backends, options_of(args))
    output.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def run_rebuild(args: argparse.Namespace, backends: list[str], output: Path) -> Any:
    results = []
    for backend in backends:
        print(f"{backend}: rebuild, {args.rebuild_events} events", file=sys.stderr)
        results.append(rebuild.run_backend(backend, args.rebuild_events, args.postgres))
    print(rebuild.table(results))
    figures = rebuild.report(results, args.rebuild_events)
    output.write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def run_audit(args: argparse.Namespace, output: Path) -> Any:
    argv = [
        "--events",
        str(args.audit_events),
        "--long",
        str(args.audit_long),
        "--log-events",
        str(args.audit_log_events),
        "--postgres",
        args.postgres,
        "--output",
        str(output),
        *shlex.split(args.audit_args),
    ]
    if audit.main(argv) != 0:
        return {"skipped": "bench/audit.py failed (see above)"}
    return json.loads(output.read_text())


def rebuild_ratio(figures: Any, backend: str) -> float | None:
    for result in (figures or {}).get("results", []):
        if result.get("backend") == backend and "ratio" in result:
            return float(result["ratio"])
    return None


def rebuild_lines(figures: Any) -> list[str]:
    lines = []
    for result in (figures or {}).get("results", []):
        backend = result["backend"]
        if "skipped" in result:
            lines.append(f"{'rebuild':<8} {backend}: skipped: {result['skipped']}")
            continue
        read = result["read_decode"]["events_per_second"]
        replay = result["replay"]["total"]["events_per_second"]
        lines.append(
            f"{'rebuild':<8} {'read+decode (events/s)':<34} {backend:<9}{'':>6}"
            f"{read:>10,.0f}{'':>9}{'':>9}{'':>8}  {result['events']:,} events"
        )
        lines.append(
            f"{'rebuild':<8} {'replay, 4 projections (ratio: /rd)':<34} {backend:<9}"
            f"{'':>6}{replay:>10,.0f}{'':>9}{'':>9}{result['ratio']:>8.2f}"
        )
    return lines


def audit_lines(figures: Any) -> list[str]:
    if not figures or "skipped" in figures:
        return [
            f"{'audit':<8} not run" + (f": {figures['skipped']}" if figures else "")
        ]
    fill = figures["fill"]
    ratios = ", ".join(f"{k} {v:,.1f}" for k, v in figures["ratios"].items())
    return [
        f"{'audit':<8} {'fill via decide+commit (events/s)':<34} {'postgres':<9}"
        f"{'':>6}{fill['events_per_second']:>10,.0f}{'':>9}{'':>9}{'':>8}  "
        f"{figures['store']['events']:,} events stored",
        f"{'audit':<8} ratios (p50): {ratios}",
    ]


def summary(merged: dict[str, Any]) -> str:
    lines = [
        "idemsync benchmarks: one run, one machine "
        f"({merged['environment']['cpus']} CPUs, load average before "
        f"{merged['load_average_before']})",
        HEADER,
        "-" * (len(HEADER) + 20),
    ]
    if merged.get("ingest"):
        lines += ingest_lines(merged["ingest"])
    lines += rebuild_lines(merged.get("rebuild"))
    if "audit" in merged:
        lines += audit_lines(merged.get("audit"))
    lines.append("")
    lines += target_lines(merged["targets"])
    return "\n".join(lines)


def save(merged: dict[str, Any], output: Path) -> None:
    merged["targets"] = targets(
        merged.get("ingest"), rebuild_ratio(merged.get("rebuild"), "postgres")
    )
    merged["recorded_until"] = datetime.now(UTC).isoformat(timespec="seconds")
    output.write_text(json.dumps(merged, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(STEPS),
        help="comma-separated: ingest, rebuild, audit",
    )
    add_backends_argument(parser)
    parser.add_argument(
        "--rebuild-events", "--events", dest="rebuild_events", type=int, default=20_000
    )
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--audit-long", type=int, default=10_000)
    parser.add_argument("--audit-log-events", type=int, default=100_000)
    parser.add_argument(
        "--audit-args",
        default="",
        help="more arguments for bench/audit.py, e.g. --keep (make bench AUDIT_ARGS=)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    add_arguments(parser)
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    backends = backends_of(args.backends)
    if set(steps) - set(STEPS) or not steps:
        parser.error(f"bad --only {args.only!r}")
    if not backends:
        parser.error(f"bad --backends {args.backends!r}")

    directory = args.output.parent
    directory.mkdir(parents=True, exist_ok=True)
    merged: dict[str, Any] = {
        "benchmark": "all",
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "environment": environment(),
        "files": {},
    }
    runners = {
        "ingest": lambda path: run_ingest(args, backends, path),
        "rebuild": lambda path: run_rebuild(args, backends, path),
        "audit": lambda path: run_audit(args, path),
    }
    for step in STEPS:
        if step not in steps:
            continue
        path = directory / f"{step}-latest.json"
        merged[step] = runners[step](path)
        merged["files"][step] = str(path)
        if step == "ingest":
            print(table(merged["ingest"], with_targets=False))
        save(merged, args.output)  # what is done so far survives a later failure
    print()
    print(summary(merged))
    save(merged, args.output)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
