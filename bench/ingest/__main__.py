"""``python -m bench.ingest``: measure, print the table, write the JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bench.ingest
from bench.databases import add_backends_argument, backends_of
from bench.ingest.measure import measure
from bench.ingest.options import add_arguments, options_of
from bench.ingest.table import table
from bench.ingest.wrk import wrk_problem

RESULTS = Path(__file__).resolve().parents[1] / "results" / "ingest-latest.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=(bench.ingest.__doc__ or "").split("\n\n")[0],
    )
    add_backends_argument(parser)
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON file")
    add_arguments(parser)
    args = parser.parse_args(argv)
    backends = backends_of(args.backends)
    if not backends:
        parser.error(f"bad --backends {args.backends!r}")
    problem = wrk_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    figures = measure(backends, options_of(args))
    print(table(figures))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
