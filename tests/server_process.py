"""``idemsync serve``, or any other command, as a subprocess: the one
harness of the end-to-end tests (``tests/e2e``), the chaos run
(``tests/chaos``) and the ingest benchmark (``bench/ingest``).

It lives in ``tests/`` because it is test and benchmark support, not
product: neither ``tests`` nor ``bench`` ships in the wheel, and ``bench``
already imports from ``tests`` (run from the repository root).

Every process starts in a session of its own (``start_new_session``) and is
stopped or killed with its whole process group: ``idemsync serve --workers
N`` is a uvicorn supervisor and N worker processes (multiprocessing spawn)
sharing the listening socket, and when the supervisor alone dies its
workers go on serving on the inherited socket, so that a new server could
not bind the port. Each start logs stdout and stderr to a file of its own
(``<name>-<start>.log``), kept for the caller to read.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Self

import httpx

from tests import procfs

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0


class NotReady(RuntimeError):
    """The process exited while starting, or did not answer in time; the
    message ends with the tail of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def kill_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGKILL every process of the group ``pgid``, until none is alive."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not procfs.group_members(pgid):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"process group {pgid} survives SIGKILL: {procfs.group_members(pgid)}"
            )
        time.sleep(0.02)


def serve_command(
    port: int,
    workers: int = 1,
    *,
    log_level: str | None = None,
    http: str | None = None,
) -> list[str]:
    """``python -m idemsync serve`` on ``HOST:port``; ``--log-level`` and
    ``--http`` only when given (the server's defaults otherwise)."""
    command = [
        sys.executable,
        "-m",
        "idemsync",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if http is not None:
        command += ["--http", http]
    if log_level is not None:
        command += ["--log-level", log_level]
    return command


def serve_env(
    config: Path, database_url: str, secrets: Mapping[str, str]
) -> dict[str, str]:
    """This process's environment with the server's configuration file, its
    database and the variables its ``env:`` secrets name."""
    return {
        **os.environ,
        "IDEMSYNC_CONFIG": str(config),
        "IDEMSYNC_DATABASE_URL": database_url,
        **secrets,
        "PYTHONUNBUFFERED": "1",
    }


class Process:
    """A command in its own process group, logging to a file per start;
    started again (a new log) after it stopped or was killed."""

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

    def pids(self) -> list[int]:
        """The process and every process below it (none before a start)."""
        return [] if self.process is None else procfs.tree(self.process.pid)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def start(self) -> Self:
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
        return self

    def wait_answering(self, url: str, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until a GET of ``url`` answers 2xx; ``NotReady`` if the process
        exits first or ``timeout`` seconds pass."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise NotReady(
                    f"{self.name} exited with {code} while starting:\n"
                    f"{tail(self.log_path, 40)}"
                )
            try:
                if httpx.get(url, timeout=1.0).is_success:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise NotReady(
            f"{self.name}: {url} not answering after {timeout:.0f} s:\n"
            f"{tail(self.log_path, 40)}"
        )

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no cleanup, as when
        the host dies."""
        if self.process is None:
            return
        kill_group(self.process.pid)
        self.process.wait(timeout=10)
        self._close_log()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the group (a graceful stop), then, after ``timeout``
        seconds, SIGKILL of whatever is left; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        kill_group(self.process.pid)
        self.process.wait(timeout=10)
        self._close_log()
        return self.process.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class ServerProcess(Process):
    """``idemsync serve --workers N`` on a fixed port (a free one unless
    given), the same port at every start. The environment (``serve_env``)
    says which configuration and database it serves."""

    def __init__(
        self,
        directory: Path,
        env: dict[str, str],
        *,
        port: int | None = None,
        workers: int = 1,
        log_level: str | None = None,
        http: str | None = None,
        name: str = "server",
    ) -> None:
        self.port = free_port() if port is None else port
        self.workers = workers
        self.http = http
        self.host = f"{HOST}:{self.port}"
        self.base_url = f"http://{self.host}"
        command = serve_command(self.port, workers, log_level=log_level, http=http)
        super().__init__(name, command, directory, env)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> Self:
        """Until ``GET /healthz`` answers (one worker is enough)."""
        self.wait_answering(f"{self.base_url}/healthz", timeout)
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=0.5).is_success
        except httpx.HTTPError:
            return False

    def worker_pids(self) -> list[int]:
        """The uvicorn workers (spawned children), not the resource tracker;
        none with one worker (the supervisor serves itself)."""
        if self.workers < 2 or not self.running():
            return []
        return [
            pid
            for pid in procfs.children(self.pid)
            if "spawn_main" in (line := procfs.cmdline(pid))
            and "resource_tracker" not in line
        ]

    def wait_workers(self, timeout: float = 30.0) -> None:
        """Until every worker has started (``/healthz`` answers as soon as
        one does), or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while len(self.worker_pids()) < self.workers and self.workers > 1:
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)

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
