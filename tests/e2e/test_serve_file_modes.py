"""``idemsync serve`` warns at start about a configuration file (and, on
SQLite, a store) that other users may read or write (issue 13), in the log
format it was given; a file of its owner alone gets no warning. Both
backends, over a real process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e


def warnings(server: Server) -> list[dict[str, object]]:
    lines = server.log_path.read_text(errors="replace").splitlines()
    found = []
    for line in lines:
        if line.startswith("{") and "(mode 0" in line:
            found.append(json.loads(line))
    return found


def test_serve_warns_at_start_about_files_other_users_may_read_or_write(
    tmp_path: Path, database_url: str, secret: str
) -> None:
    server = Server(tmp_path, database_url, secret)
    config = Path(server.env["IDEMSYNC_CONFIG"])
    config.chmod(0o666)
    store = Path(database_url.removeprefix("sqlite:///"))
    on_sqlite = database_url.startswith("sqlite:///")
    if on_sqlite:
        store.chmod(0o604)
    try:
        server.start()
        server.stop()
        logged = warnings(server)
        messages = [str(line["message"]) for line in logged]
        assert {line["level"] for line in logged} == {"warning"}
        assert (
            f"configuration file {config} is writable by its group and writable "
            "by other users and readable by other users (mode 0666): "
            f"chmod g-w,o-rwx {config}"
        ) in messages
        if on_sqlite:
            assert (
                f"SQLite database {store} is readable by other users (mode 0604): "
                f"chmod g-w,o-rwx {store}"
            ) in messages
        assert len(messages) == 1 + on_sqlite

        config.chmod(0o600)
        if on_sqlite:
            for path in store.parent.glob(store.name + "*"):
                path.chmod(0o600)  # the store, and its -wal, -shm if left
        server.start()
    finally:
        server.stop()
    assert warnings(server) == []
