"""The measured server: ``idemsync serve`` through the one process harness
(``tests/server_process.py``), configured with the benchmark's source (its
fixed secret, the longest tolerance a source may have)."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

from bench.ingest.signing import SECRET, SOURCE, TOLERANCE_SECONDS
from infrastructure.persistence.database import Database
from tests.server_process import ServerProcess, serve_env

CONFIG = """\
[database]
lock_timeout_seconds = 5.0

[projections]
in_serve = {in_serve}

[sources.{source}]
scheme = "standard-webhooks"
secrets = ["env:IDEMSYNC_BENCH_SECRET"]
tolerance_seconds = {tolerance}
mapping = "standard"
{privacy}"""
PRIVACY = """
[privacy]
master_key = "env:IDEMSYNC_BENCH_MASTER_KEY"
"""
STARTUP_SECONDS = 60.0
STOP_SECONDS = 30.0


def bench_server(
    directory: Path,
    database: Database,
    workers: int,
    *,
    in_serve: bool,
    log_level: str,
    master_key: bool = False,
) -> ServerProcess:
    """``idemsync serve`` on a free port and ``database``, not started;
    ``master_key``: with ``[privacy] master_key`` (a fresh random key)."""
    config = directory / "idemsync.toml"
    config.write_text(
        CONFIG.format(
            in_serve=str(in_serve).lower(),
            source=SOURCE,
            tolerance=TOLERANCE_SECONDS,
            privacy=PRIVACY if master_key else "",
        )
    )
    key = base64.b64encode(os.urandom(32)).decode()
    env = serve_env(
        config,
        database.url,
        {"IDEMSYNC_BENCH_SECRET": SECRET, "IDEMSYNC_BENCH_MASTER_KEY": key},
    )
    return ServerProcess(directory, env, workers=workers, log_level=log_level)


def start(server: ServerProcess) -> None:
    """Start ``server`` and wait until it answers and, with several workers,
    until every worker has started (``/healthz`` answers as soon as one
    does), then a little more: the first run is not their warm-up."""
    server.start().wait_ready(STARTUP_SECONDS)
    if server.workers > 1:
        server.wait_workers()
        time.sleep(0.5)


def stop(server: ServerProcess) -> None:
    """SIGTERM, and SIGKILL of the whole process group if it is not gone
    within ``STOP_SECONDS``."""
    server.stop(STOP_SECONDS)
