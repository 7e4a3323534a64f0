"""What a chaos run adds to the process harness (``tests/server_process.py``:
each process in its own process group, killed with it): the projection
runner, and the reaping of the workers a killed supervisor orphans.

``idemsync serve --workers N`` is a uvicorn supervisor and N worker
processes (multiprocessing spawn) that share the listening socket. SIGKILL of
a worker: the supervisor notices within about half a second and starts a new
one. SIGKILL of the supervisor alone: its workers are orphaned and go on
serving on the inherited socket, so a new server could not bind the port;
the harness kills them too, with their process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from pathlib import Path

from tests import procfs
from tests.server_process import Process

PR_SET_CHILD_SUBREAPER = 36


def set_subreaper(on: bool) -> bool:
    """Make this process the reaper of its orphaned descendants (Linux
    ``prctl``): a killed supervisor's workers are then reparented here, not
    to PID 1 (which, in some containers, never reaps them: they would stay
    zombies). Whether it worked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def reap_orphans(own: set[int]) -> int:
    """Reap the zombie Python children of this process that are not
    ``own`` (the ``Popen`` children, which ``subprocess`` reaps itself): the
    orphaned uvicorn workers and resource trackers; how many."""
    me, reaped = os.getpid(), 0
    for pid in procfs.pids():
        fields = procfs.stat_fields(pid)
        if pid in own or fields is None:
            continue
        # Python processes only: never the child of a concurrent
        # subprocess.run (pg_ctlcluster), whose status it waits for.
        if (
            fields[0] == "Z"
            and int(fields[1]) == me
            and procfs.command_name(pid).startswith("python")
        ):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
                reaped += 1
    return reaped


class Runner(Process):
    """``idemsync projections run``."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        super().__init__(
            "runner",
            [sys.executable, "-m", "idemsync", "projections", "run"],
            directory,
            env,
        )
