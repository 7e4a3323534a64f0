"""A CI-sized run of ``bench/audit.py`` (``make bench``): 5,000 events, 500
of them on the long-lived order, in a scratch PostgreSQL database. It checks
that the benchmark fills its store through the engine, prints every row of
its table and the ``as_of`` query plan, and writes its JSON; not the figures
themselves (they depend on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_SERVER

ROOT = Path(__file__).resolve().parents[2]
MODULE = "bench.audit"
ROWS = (
    "events_of first page",
    "events_of full walk",
    "version_at early",
    "version_at middle",
    "version_at late",
    "state as_of early",
    "state as_of middle",
    "state as_of late",
    "state now (long)",
    "state as_of small order",
    "delivery lookup",
    "log read",
)


@pytest.mark.postgres
def test_the_audit_benchmark_prints_its_table_and_writes_its_json(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results" / "audit-latest.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            MODULE,
            "--events",
            "5000",
            "--long",
            "500",
            "--log-events",
            "2000",
            "--postgres",
            PG_SERVER,
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for name in ROWS:
        assert any(name in line for line in lines), (name, done.stdout)
    assert any(line.startswith("store: ") for line in lines), done.stdout
    assert any("SyncService.decide + commit" in line for line in lines)
    assert any(line.startswith("ratio state as_of late") for line in lines)
    assert any("EXPLAIN (ANALYZE, BUFFERS)" in line for line in lines)
    assert any(line.startswith("as_of query plan: ") for line in lines)
    assert f"written to {output}" in done.stdout

    report = json.loads(output.read_text())
    assert report["benchmark"] == "audit"
    assert report["store"]["events"] >= 5000
    assert report["store"]["long_order_events"] >= 500
    assert report["fill"]["events"] == report["store"]["events"]
    assert report["fill"]["events_per_second"] > 0
    measured = {row["name"]: row for row in report["measurements"]}
    for name in ROWS:
        (row,) = [row for key, row in measured.items() if key.startswith(name)]
        assert row["runs"] > 0 and row["p50_ms"] > 0, row
    assert measured["events_of full walk"]["events"] >= 500
    assert measured["log read 2,000"]["events"] == 2000
    assert set(report["explain"]["plans"]) == {"late", "early"}
