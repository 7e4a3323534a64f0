"""The processes of a chaos run, each in its own process group.

``idemsync serve --workers N`` is a uvicorn supervisor and N worker
processes (multiprocessing spawn) that share the listening socket. SIGKILL of
a worker: the supervisor notices within about half a second and starts a new
one. SIGKILL of the supervisor alone: its workers are orphaned and go on
serving on the inherited socket, so a new server could not bind the port;
they must be killed too, which is why every process here is started in a new
session (``start_new_session``) and killed with ``killpg``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[2]


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of the process group ``pgid``.

    Zombies stay members until reaped, and here PID 1 reaps no orphan, so
    ``killpg`` alone cannot tell a dead group from a live one."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


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
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in own:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        # Python processes only: never the child of a concurrent
        # subprocess.run (pg_ctlcluster), whose status it waits for.
        if fields[0] == "Z" and int(fields[1]) == me and command.startswith("python"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry), os.WNOHANG)
                reaped += 1
    return reaped


def kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGKILL every process of the group ``pgid``, until none is alive."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not group_members(pgid):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"process group {pgid} survives SIGKILL: {group_members(pgid)}"
            )
        time.sleep(0.02)


class Process:
    """A command in its own process group, logging to a file per start."""

    def __init__(
        self, name: str, command: list[str], directory: Path, env: dict[str, str]
    ) -> None:
        self.name = name
        self.command = command
        self.directory = directory
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = directory / f"{name}.log"
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def start(self) -> None:
        assert not self.running()
        self._close_log()
        self.starts += 1
        self.log_path = self.directory / f"{self.name}-{self.starts}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole process group (the host dies)."""
        if self.process is None:
            return
        kill_group(self.process.pid)
        self.process.wait(timeout=10)
        self._close_log()

    def stop(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL of whatever is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        kill_group(self.process.pid)
        self.process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class Serve(Process):
    """``idemsync serve --workers N`` on a fixed port."""

    def __init__(
        self,
        name: str,
        directory: Path,
        env: dict[str, str],
        port: int,
        workers: int,
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "idemsync",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ]
        if workers > 1:
            env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(directory / "metrics")}
        super().__init__(name, command, directory, env)
        self.port = port
        self.workers = workers
        self.base_url = f"http://127.0.0.1:{port}"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=0.5).is_success
        except httpx.HTTPError:
            return False

    def worker_pids(self) -> list[int]:
        """The uvicorn workers (spawned children), not the resource tracker."""
        if self.workers < 2 or not self.running():
            return []
        return [
            pid
            for pid in children(self.pid)
            if "spawn_main" in cmdline(pid) and "resource_tracker" not in cmdline(pid)
        ]

    def kill_worker(self, rng: random.Random) -> int | None:
        """SIGKILL one worker; its pid, or None when there was none."""
        workers = self.worker_pids()
        if not workers:
            return None
        victim = rng.choice(workers)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return victim

    def kill_supervisor(self, orphaned_seconds: float) -> int:
        """SIGKILL the supervisor alone, let its orphaned workers serve for
        ``orphaned_seconds``, then kill them (the group); how many workers
        were orphaned."""
        orphans = self.worker_pids()
        os.kill(self.pid, signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=10)
        time.sleep(orphaned_seconds)
        kill_group(self.pid)
        self._close_log()
        return len(orphans)


class Runner(Process):
    """``idemsync projections run``."""

    def __init__(self, directory: Path, env: dict[str, str]) -> None:
        super().__init__(
            "runner",
            [sys.executable, "-m", "idemsync", "projections", "run"],
            directory,
            env,
        )
