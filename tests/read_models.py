"""Read models in tests: wait for the in-app projection runner, and take a
snapshot of every read-model table to compare row for row."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import MetaData, select
from starlette.testclient import TestClient

from infrastructure.persistence.database import Database
from projections.catalog import all_projections
from web.state import app_state


def caught_up(client: TestClient, timeout: float = 20.0) -> None:
    """Wait until every projection of the app under test has reached the head
    of the log (fail at once if one failed)."""
    runner = app_state(client.app).runner
    deadline = time.monotonic() + timeout
    while True:
        statuses = runner.status()
        failed = [s for s in statuses if s.state == "failed"]
        assert not failed, f"projections failed: {failed}"
        if all(status.lag == 0 for status in statuses):
            return
        assert time.monotonic() < deadline, f"projections lag: {statuses}"
        time.sleep(0.05)


def snapshot(database_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every read-model table's rows, ordered by primary key."""
    database = Database(database_url)
    rows = {}
    try:
        with database.engine().connect() as conn:
            for projection in all_projections().values():
                for name, table in projection.define(MetaData()).items():
                    query = select(table).order_by(*table.primary_key.columns)
                    rows[name] = [dict(row) for row in conn.execute(query).mappings()]
    finally:
        database.close()
    return rows
