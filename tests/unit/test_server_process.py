"""The process harness (``tests/server_process.py``) stops and kills a
process with everything it started: a child left behind would keep a port
or a database connection, or (a uvicorn worker) go on serving."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests import procfs
from tests.server_process import NotReady, Process, free_port

PARENT_OF_A_SLEEPER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('started', flush=True)\n"
    "time.sleep(60)\n"
)


def started(tmp_path: Path) -> Process:
    process = Process(
        "parent",
        [sys.executable, "-c", PARENT_OF_A_SLEEPER],
        tmp_path,
        dict(os.environ),
    ).start()
    deadline = time.monotonic() + 10
    while len(process.pids()) < 2 or "started" not in process.log_path.read_text():
        assert time.monotonic() < deadline, process.pids()
        time.sleep(0.05)
    return process


def test_kill_leaves_no_process_of_the_group(tmp_path: Path) -> None:
    process = started(tmp_path)
    group = process.pid

    process.kill()

    assert not process.running()
    assert procfs.group_members(group) == []


def test_stop_ends_the_group_and_keeps_the_log_of_each_start(tmp_path: Path) -> None:
    process = started(tmp_path)
    first = process.log_path
    assert process.stop(timeout=5) is not None
    assert procfs.group_members(process.pid) == []

    process.start()
    process.stop(timeout=5)

    assert (first.name, process.log_path.name) == ("parent-1.log", "parent-2.log")
    assert "started" in first.read_text()


def test_a_process_that_exits_while_starting_is_not_ready(tmp_path: Path) -> None:
    process = Process(
        "exits",
        [sys.executable, "-c", "print('no luck'); raise SystemExit(3)"],
        tmp_path,
        dict(os.environ),
    ).start()
    try:
        process.wait_answering(f"http://127.0.0.1:{free_port()}/", timeout=10)
    except NotReady as error:
        assert "exited with 3" in str(error)
        assert "no luck" in str(error)
    else:
        raise AssertionError("not refused")
