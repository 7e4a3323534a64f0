"""The real server as a subprocess: ``python -m idemsync serve`` on a free
port, configured by a TOML file and the environment, reached over a socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.server_process import NotReady, ServerProcess, serve_env

CONFIG = """\
[sources.acme]
scheme = "standard-webhooks"
secrets = ["env:ACME_SECRET"]
"""


def write_config(directory: Path) -> Path:
    path = directory / "idemsync.toml"
    path.write_text(CONFIG)
    return path


def server_env(directory: Path, database_url: str, secret: str) -> dict[str, str]:
    """The environment of a server of ``CONFIG`` (written in ``directory``)."""
    return serve_env(write_config(directory), database_url, {"ACME_SECRET": secret})


class Server(ServerProcess):
    """One ``idemsync serve`` (``tests/server_process.py``) on a fixed port,
    serving ``CONFIG``'s one source; started again on the same port and
    database after a crash. Each start logs to its own file and waits until
    the server answers (a test failure otherwise). ``http`` is its
    ``--http`` (the HTTP/1.1 parser)."""

    def __init__(
        self,
        directory: Path,
        database_url: str,
        secret: str,
        workers: int = 1,
        http: str = "auto",
    ) -> None:
        env = server_env(directory, database_url, secret)
        super().__init__(directory, env, workers=workers, http=http)

    def start(self) -> Server:
        super().start()
        try:
            self.wait_ready()
        except NotReady as error:
            pytest.fail(str(error))
        return self

    def crash(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as when the host dies."""
        self.kill()


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
