"""The sightings buffer on its own: counting, its bound, and what a failed
flush keeps. Its store is one that cannot be reached (the flushes that write
are tested on both backends in tests/integration/test_delivery_sightings.py)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from infrastructure.sightings import PeriodicFlush, Sighting, Sightings

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def unreachable_sqlite(tmp_path: Path, max_keys: int = 100_000) -> Sightings:
    return Sightings(
        create_engine(f"sqlite:///{tmp_path}/missing/idemsync.db"), max_keys=max_keys
    )


def test_sightings_of_one_key_add_up_and_keep_the_latest_time(
    tmp_path: Path,
) -> None:
    sightings = unreachable_sqlite(tmp_path)
    sightings.record("acme", "k1", at(5))
    sightings.record("acme", "k1", at(3))  # a slower thread, recorded late
    sightings.record("acme", "k2", at(4))
    assert sightings.snapshot() == {
        ("acme", "k1"): Sighting(2, at(5)),
        ("acme", "k2"): Sighting(1, at(4)),
    }


def test_the_buffer_keeps_at_most_max_keys_dropping_the_least_recently_seen(
    tmp_path: Path,
) -> None:
    sightings = unreachable_sqlite(tmp_path, max_keys=2)
    sightings.record("acme", "a", at(1))
    sightings.record("acme", "b", at(2))
    sightings.record("acme", "b", at(3))
    sightings.record("acme", "a", at(4))
    sightings.record("acme", "c", at(5))
    assert sightings.snapshot() == {
        ("acme", "a"): Sighting(2, at(4)),
        ("acme", "c"): Sighting(1, at(5)),
    }
    assert sightings.dropped == 2


def test_a_failed_flush_keeps_its_sightings_older_than_the_new_ones_and_bounded(
    tmp_path: Path,
) -> None:
    sightings = unreachable_sqlite(tmp_path, max_keys=2)
    sightings.record("acme", "a", at(1))
    sightings.record("acme", "b", at(2))
    assert sightings.flush() == 0
    assert sightings.pending == 2 and sightings.dropped == 0
    sightings.record("acme", "c", at(3))
    assert set(sightings.snapshot()) == {("acme", "b"), ("acme", "c")}
    assert sightings.dropped == 1


def test_a_failed_flush_warns_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = create_engine(
        "postgresql+psycopg://idemsync:s3cret-pw@127.0.0.1:1/idemsync",
        connect_args={"connect_timeout": 1},
    )
    sightings = Sightings(engine)
    sightings.record("acme", "k", at(1))
    with caplog.at_level(logging.DEBUG, logger="idemsync.sightings"):
        assert sightings.flush() == 0
    assert sightings.pending == 1
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "OperationalError" in caplog.text
    assert "s3cret-pw" not in caplog.text


def test_many_threads_recording_at_once_lose_no_sighting(tmp_path: Path) -> None:
    sightings = unreachable_sqlite(tmp_path)

    def record() -> None:
        for n in range(500):
            sightings.record("acme", f"k{n % 7}", at(n))

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(s.count for s in sightings.snapshot().values()) == 8 * 500


def test_stopping_the_periodic_flush_flushes_a_last_time(tmp_path: Path) -> None:
    flushed = threading.Event()

    class Recording(Sightings):
        def flush(self) -> int:
            flushed.set()
            return 0

    flushing = PeriodicFlush(
        Recording(create_engine(f"sqlite:///{tmp_path}/x.db")), interval_seconds=3600
    )
    flushing.start()
    assert not flushed.is_set()
    flushing.stop()
    assert flushed.is_set()
