"""A CI-sized run of ``bench/run.py`` (``make bench``): every step (ingest
with wrk on both backends, the ``--stored-events`` hook, rebuild, audit) at
the smallest sizes. It checks that the benchmark runs, prints every row of
its summary and writes the merged JSON; never the figures themselves (they
depend on the machine).

It drives ``idemsync serve`` with ``wrk`` (Debian package ``wrk``; ``.ci/run``
installs it): without wrk it skips with one line saying why, except under
``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_SERVER

ROOT = Path(__file__).resolve().parents[2]
MODULE = "bench.run"
ROWS = (
    ("ceiling", "raw psycopg, table lock", "postgres"),
    ("ceiling", "raw psycopg, no table lock", "postgres"),
    ("ceiling", "pgbench (C), no table lock", "postgres"),
    ("ceiling", "CEILING: strongest of the above", "postgres"),
    ("ceiling", "raw sqlite3 CEILING, one writer", "sqlite"),
    ("loadgen", "wrk -> no-op server", "-"),
    ("loadgen", "wrk -> idemsync GET /healthz", "sqlite"),
    ("loadgen", "wrk -> idemsync GET /healthz", "postgres"),
    ("ingest", "unique", "sqlite"),
    ("ingest", "unique", "postgres"),
    ("ingest", "unique MAX (ratio: / ceiling)", "sqlite"),
    ("ingest", "unique MAX (ratio: / ceiling)", "postgres"),
    ("ingest", "unique at 80% load (ratio: / max)", "sqlite"),
    ("ingest", "unique at 80% load (ratio: / max)", "postgres"),
    ("ingest", "duplicate", "sqlite"),
    ("ingest", "duplicate", "postgres"),
    ("ingest", "duplicate MAX (ratio: / unique)", "sqlite"),
    ("ingest", "duplicate MAX (ratio: / unique)", "postgres"),
    ("ingest", "unique, ", "postgres"),
    ("memory", "server RSS (process tree)", "sqlite"),
    ("memory", "server RSS (process tree)", "postgres"),
    ("rebuild", "read+decode (events/s)", "sqlite"),
    ("rebuild", "read+decode (events/s)", "postgres"),
    ("rebuild", "replay, 4 projections (ratio: /rd)", "sqlite"),
    ("rebuild", "replay, 4 projections (ratio: /rd)", "postgres"),
    ("audit", "fill via decide+commit (events/s)", "postgres"),
)
TARGETS = (
    "unique ingest / strongest raw ceiling",
    "duplicate / unique ingest",
    "p99 at 80% of max throughput (ms)",
    "rebuild / read+decode",
    "events stored / empty",
)


def wrk_or_skip() -> None:
    if shutil.which("wrk") is not None:
        return
    problem = "wrk not installed (apt-get install wrk): the ingest benchmark needs it"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {problem}")
    pytest.skip(problem)


@pytest.mark.postgres
@pytest.mark.e2e
def test_make_bench_prints_every_row_and_writes_the_merged_json(
    tmp_path: Path,
) -> None:
    wrk_or_skip()
    output = tmp_path / "results" / "latest.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            MODULE,
            "--duration",
            "1",
            "--connections",
            "2",
            "--raw-levels",
            "1",
            "--raw-duration",
            "0.3",
            "--duplicates",
            "100",
            "--stored-events",
            "1000",
            "--prefill-processes",
            "1",
            "--template-events",
            "300",
            "--rebuild-events",
            "300",
            "--audit-events",
            "1000",
            "--audit-long",
            "100",
            "--audit-log-events",
            "200",
            "--server-log-level",
            "warning",
            "--postgres",
            PG_SERVER,
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    summary = done.stdout.split("idemsync benchmarks: one run", 1)[-1]
    lines = summary.splitlines()
    for section, name, backend in ROWS:
        found = [
            line
            for line in lines
            if line.startswith(section)
            and line[9:].startswith(name)
            and line[44:].startswith(backend)
        ]
        assert found, (section, name, backend, summary)
    for target in TARGETS:
        (row,) = [line for line in lines if target in line]
        assert " PASS " in row or " MISS " in row, row  # not NOT RUN
    assert f"written to {output}" in done.stdout

    merged = json.loads(output.read_text())
    assert set(merged) >= {"ingest", "rebuild", "audit", "targets", "environment"}
    for name in ("ingest", "rebuild", "audit"):
        assert Path(merged["files"][name]).exists()
    postgres = merged["ingest"]["backends"]["postgres"]
    sqlite = merged["ingest"]["backends"]["sqlite"]
    for backend in (postgres, sqlite):
        assert backend["unique"]["best"]["requests"] > 0
        assert backend["duplicate"]["best"]["requests"] > 0
        assert backend["ceiling"]["best"]["requests"] > 0
        assert backend["unique_at_80_percent"]["requests"] > 0
        assert backend["server_rss_mb"]["peak"] > 0
        # Every unique delivery wrote its record and three events.
        store = backend["store"]
        assert store["events"] >= 3 * store["outcomes"]["applied"] > 0
    assert postgres["ceiling_no_table_lock"]["best"]["requests"] > 0
    assert postgres["ceiling_pgbench"]["best"]["requests"] > 0
    assert postgres["unique_with_stored_events"]["stored_events"] >= 1000
    assert merged["ingest"]["load_generator"]["requests"] > 0
    assert [t["verdict"] for t in merged["targets"]].count("NOT RUN") == 0
