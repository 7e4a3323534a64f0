"""The chaos run in its CI size (issue 7, items 1 and 2), on both backends:
a fixed script of about 5,800 deliveries (re-sends under fresh keys
included) sent over two sources, ``acme`` (Standard Webhooks) and ``hub``
(GitHub), by partners that retry until acknowledged, while servers,
workers, the projection runner and (on PostgreSQL) the database are killed
and restarted. Every check of
``tests.chaos.checks`` must pass; the summary table is printed either way.

``make chaos DURATION=…`` is the long form (``python -m tests.chaos``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.chaos.scenario import (
    Options,
    dump,
    postgres_restart_command,
    print_report,
    run,
)

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]

SEED = int(os.environ.get("IDEMSYNC_CHAOS_SEED", "20261107"))
CI_SENDS = 5_000
"""At least this many deliveries in the script (duplicates included)."""


def report_and_check(options: Options, capsys: pytest.CaptureFixture[str]) -> None:
    report = run(options)
    dump(report, options.directory / "report.json")
    with capsys.disabled():
        print()
        print_report([report])
        print(f"logs: {options.directory}")
    assert not report.problems, "\n".join(report.problems)


@pytest.mark.postgres
def test_chaos_on_postgres(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    restart = postgres_restart_command()
    if restart is None and os.environ.get("CI") == "true":
        pytest.fail(
            "CI=true and no way to restart PostgreSQL (IDEMSYNC_CHAOS_PG_RESTART)"
        )
    report_and_check(
        Options(
            backend="postgres",
            database_url=postgres_url,
            directory=tmp_path / "chaos",
            seed=SEED,
            sends=CI_SENDS,
            servers=2,
            workers=2,
            threads=8,
            postgres_restart=restart,
            log=lambda line: None,
        ),
        capsys,
    )


def test_chaos_on_sqlite(
    sqlite_template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "idemsync.db"
    shutil.copy(sqlite_template, path)
    report_and_check(
        Options(
            backend="sqlite",
            database_url=f"sqlite:///{path}",
            directory=tmp_path / "chaos",
            seed=SEED,
            sends=CI_SENDS,
            servers=1,
            workers=1,
            threads=4,
            log=lambda line: None,
        ),
        capsys,
    )
