"""kill -9 of ``idemsync projections run`` in the middle of its batches, on
both backends (specification §6: each projection writes its rows and its
position in one transaction, so a crash repeats nothing and loses nothing).

A few thousand events are recorded first (group commit, in this process).
The runner subprocess is ``python -m idemsync projections run`` with one
projection added to the catalog: the test-only ``IdProbe``, which records
every event it applies under a primary key. It is killed once it has made
some progress but is not done, checked for consistency while dead, started
again and awaited until it reaches the head. On PostgreSQL the kill waits
for a batch's transaction to be open with writes in it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from domain.application import SyncService
from infrastructure.persistence.database import Database
from projections.catalog import all_projections
from projections.positions import positions as positions_table
from tests.histories import history
from tests.integration.test_projection_runner import (
    IdProbe,
    assert_probe_matches_log,
    assert_read_models_match_aggregates,
    commit_in_batches,
    create_tables,
    log_identities,
    probe_rows,
    receipt_outcomes,
    source_stats,
)
from tests.server_process import Process, serve_env, tail

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """\
[projections]
batch_size = 50
poll_seconds = 0.05

[sources.acme]
scheme = "standard-webhooks"
secrets = ["env:ACME_SECRET"]
"""
RUN_WITH_PROBE = """\
import runpy, sys
import projections.catalog
from tests.integration.test_projection_runner import IdProbe
catalog = projections.catalog.all_projections
projections.catalog.all_projections = lambda: {
    **catalog(), IdProbe.name: IdProbe("subprocess")
}
sys.argv = ["idemsync", "projections", "run"]
runpy.run_module("idemsync", run_name="__main__", alter_sys=True)
"""
"""``python -m idemsync projections run``, with ``IdProbe`` in the catalog."""
NAMES = (*all_projections(), IdProbe.name)
WAIT_SECONDS = 60.0


class RunnerProcess(Process):
    """``idemsync projections run`` (with ``IdProbe``) as a subprocess
    (``tests/server_process.py``); each start logs to its own file."""

    def __init__(self, directory: Path, database_url: str, secret: str) -> None:
        config = directory / "idemsync.toml"
        config.write_text(CONFIG)
        env = serve_env(config, database_url, {"ACME_SECRET": secret})
        env["PYTHONPATH"] = str(ROOT)
        super().__init__(
            "runner", [sys.executable, "-c", RUN_WITH_PROBE], directory, env
        )

    def check_alive(self) -> None:
        code = self.exit_code()
        if code is not None:
            pytest.fail(f"the runner exited with {code}:\n{tail(self.log_path)}")


@pytest.fixture
def runner_process(
    tmp_path: Path, database_url: str, secret: str
) -> Iterator[RunnerProcess]:
    process = RunnerProcess(tmp_path, database_url, secret)
    yield process
    process.stop()


def writing(engine: Engine) -> bool:
    """Whether a batch is being written right now: on PostgreSQL, another
    session of this database holds a transaction id (it has written and not
    committed); SQLite cannot tell, so it says yes."""
    if engine.dialect.name != "postgresql":
        return True
    with engine.connect() as conn:
        open_writes = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_xid IS NOT NULL"
            )
        ).scalar_one()
    return bool(open_writes)


def read_positions(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(select(positions_table.c.name, positions_table.c.position))
        return {name: int(position) for name, position in rows}


def test_a_runner_killed_mid_batch_resumes_without_losing_or_repeating_an_event(
    database_url: str, runner_process: RunnerProcess
) -> None:
    database = Database(database_url, pool_size=2)
    service = SyncService(env=database.eventsourcing_env())
    engine = database.engine()
    try:
        began = time.monotonic()
        events = history(seed=2026, orders=420, customers=60)
        commit_in_batches(service, events)
        create_tables(engine, IdProbe())
        head = service.recorder.max_notification_id() or 0
        print(f"\n{len(events)} deliveries, {head} events recorded", end="")
        print(f" in {time.monotonic() - began:.1f} s")

        began = time.monotonic()
        runner_process.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not (
            0 < read_positions(engine).get(IdProbe.name, 0) < head and writing(engine)
        ):
            runner_process.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"no progress: {read_positions(engine)}")
            time.sleep(0.005)
        runner_process.kill()

        # Dead: every projection's rows match its position, as committed.
        at_kill = read_positions(engine)
        print(f"killed after {time.monotonic() - began:.1f} s at {at_kill}")
        assert 0 < at_kill[IdProbe.name] < head
        applied = [identity for identity, _ in probe_rows(engine)]
        logged = log_identities(service)
        committed = service.recorder.select_notifications(
            start=1, limit=head, stop=at_kill[IdProbe.name]
        )
        assert applied == logged[: len(committed)], "rows and position disagree"

        began = time.monotonic()
        runner_process.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while any(read_positions(engine).get(n) != head for n in NAMES):
            runner_process.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"not caught up to {head}: {read_positions(engine)}")
            time.sleep(0.05)
        print(f"restarted and caught up in {time.monotonic() - began:.1f} s")
        assert runner_process.stop() == 0, tail(runner_process.log_path)

        final = read_positions(engine)
        assert {name: final[name] for name in NAMES} == dict.fromkeys(NAMES, head)
        assert source_stats(engine) == receipt_outcomes(service)
        assert sum(source_stats(engine).values()) == len(events)
        assert_read_models_match_aggregates(engine, service, events)
        assert_probe_matches_log(engine, service)
    finally:
        service.close()
        database.close()
