"""The real server as a subprocess: ``python -m idemsync serve`` on a free
port, configured by a TOML file and the environment, reached over a socket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

import httpx
import pytest

CONFIG = """\
[sources.acme]
scheme = "standard-webhooks"
secrets = ["env:ACME_SECRET"]
"""
STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(directory: Path) -> Path:
    path = directory / "idemsync.toml"
    path.write_text(CONFIG)
    return path


def server_env(directory: Path, database_url: str, secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "IDEMSYNC_CONFIG": str(write_config(directory)),
        "IDEMSYNC_DATABASE_URL": database_url,
        "ACME_SECRET": secret,
        "PYTHONUNBUFFERED": "1",
    }


def serve_command(port: int, workers: int = 1) -> list[str]:
    return [
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
    ]


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """One ``idemsync serve`` on a fixed port; started again on the same port
    and database after a crash. Each start logs to its own file. ``http`` is
    its ``--http`` (the HTTP/1.1 parser)."""

    def __init__(
        self,
        directory: Path,
        database_url: str,
        secret: str,
        workers: int = 1,
        http: str = "auto",
    ) -> None:
        self.directory = directory
        self.workers = workers
        self.http = http
        self.env = server_env(directory, database_url, secret)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "server.log"
        self.starts = 0
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Server:
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        self.log_path = self.directory / f"server-{self.starts}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*serve_command(self.port, self.workers), "--http", self.http],
            env=self.env,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                pytest.fail(
                    f"idemsync serve exited with {code} while starting:\n"
                    f"{tail(self.log_path)}"
                )
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).is_success:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(
            f"idemsync serve not healthy after {STARTUP_TIMEOUT:.0f} s:\n"
            f"{tail(self.log_path)}"
        )

    def crash(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as when the host dies."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._close_log()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class ServerFactory(Protocol):
    def __call__(self, database_url: str, workers: int = 1) -> Server: ...


@pytest.fixture
def serve(tmp_path: Path, secret: str) -> Iterator[ServerFactory]:
    """Start ``idemsync serve`` on a database; every server is stopped at
    teardown (terminate, then kill)."""
    servers: list[Server] = []

    def start(database_url: str, workers: int = 1) -> Server:
        directory = tmp_path / f"server{len(servers)}"
        directory.mkdir()
        server = Server(directory, database_url, secret, workers)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(serve: ServerFactory, database_url: str) -> Server:
    """``idemsync serve`` on the test's fresh migrated database."""
    return serve(database_url)
