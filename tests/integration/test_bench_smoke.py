"""A CI-sized run of ``bench/rebuild.py`` (``make bench``): 500 events on
SQLite only. It checks that the benchmark runs, prints its table and writes
its JSON, not the figures themselves (they depend on the machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = "bench.rebuild"
BUDGET_SECONDS = 20.0


def test_the_rebuild_benchmark_prints_its_table_and_writes_its_json(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results" / "latest.json"
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            MODULE,
            "--events",
            "500",
            "--backends",
            "sqlite",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    elapsed = time.monotonic() - began

    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["backend", "events", "ingest", "ev/s"]
    (row,) = [line for line in lines if line.startswith("sqlite ")]
    assert float(row.split()[-2]) > 0, row  # the ratio
    for name in ("orders", "customers", "revenue", "source_stats"):
        assert any(line.strip().startswith(name) for line in lines), name
    assert f"written to {output}" in done.stdout

    report = json.loads(output.read_text())
    (result,) = report["results"]
    assert result["backend"] == "sqlite"
    assert result["events"] >= 500
    assert result["read_decode"]["events"] == result["events"]
    assert result["read_decode"]["events_per_second"] > 0
    replayed = result["replay"]["per_projection"]
    assert set(replayed) == {"orders", "customers", "revenue", "source_stats"}
    assert all(figures["events"] > 0 for figures in replayed.values())
    assert result["ratio"] > 0
    assert elapsed < BUDGET_SECONDS, f"the smoke run took {elapsed:.1f} s"
