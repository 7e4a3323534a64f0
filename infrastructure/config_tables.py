"""The configuration file's tables: each key, its type, bounds and default, once.

``[sources.NAME]`` is ``SourceTable`` (source_table.py) and ``[tokens.NAME]``
``TokenTable`` (access.py); both are decoded one entry at a time, so that an
error names the entry (msgspec's error path elides dictionary keys).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from infrastructure.config_fields import (
    FileTable,
    Flag,
    NonEmptyString,
    PositiveInt,
    PositiveNumber,
    Table,
    says,
)

DEFAULT_DATABASE_URL = "sqlite:///var/idemsync.db"


class DatabaseTable(FileTable, frozen=True):
    """``[database]``; ``IDEMSYNC_DATABASE_URL`` wins over ``url``."""

    url: NonEmptyString = DEFAULT_DATABASE_URL
    lock_timeout_seconds: PositiveNumber = 5.0
    pool_size: PositiveInt = 10
    """Connections of the event store's pool, per process (as many again
    of overflow); PostgreSQL sees up to ``2 * pool_size + 17`` per process
    in all (README, Configuration: Connections)."""


class ServerTable(FileTable, frozen=True):
    """``[server]``: limits of the web process (web/app.py, web/limits.py)."""

    retry_after_seconds: PositiveInt = 2
    body_timeout_seconds: PositiveNumber = 10.0
    """A webhook body must have arrived whole within this, else 408."""
    metrics_require_token: Flag = False
    """``/metrics`` needs a token of the role reader."""
    commit_wait_seconds: PositiveNumber = 5.0
    """How long a decided delivery may wait to be committed before it is
    answered 503 (see infrastructure/group_commit.py)."""
    max_waiting_commits: PositiveInt = 2000
    """Deliveries waiting to commit, per process, beyond which new ones are
    answered 503 at once."""
    max_in_flight: PositiveInt = 512
    """Webhook requests being handled at once, per process, beyond which new
    ones are answered 503 at once."""
    max_header_bytes: PositiveInt = 16384
    """A request whose header names and values add up to more bytes is
    refused with 431 before any work (web/limits.py)."""
    max_headers: PositiveInt = 100
    """A request with more headers is refused with 431."""
    header_timeout_seconds: PositiveNumber = 10.0
    """A connection must deliver a request line and headers within this,
    counted from its opening or from its previous answer, else it is closed
    (408 if it had begun a request; web/transport.py)."""


class ProjectionsTable(FileTable, frozen=True):
    """``[projections]``: the projection runner (projections/catalog.py)."""

    in_serve: Flag = True
    """Run the projection runner inside ``idemsync serve``."""
    batch_size: PositiveInt = 500
    poll_seconds: PositiveNumber = 0.5


class PrivacyTable(FileTable, frozen=True):
    """``[privacy]``: encryption of personal fields (docs/privacy.md)."""

    master_key: Annotated[str, says('expected a string "env:NAME"')] | None = None
    """``env:NAME``: the variable holding the base64 of the 32-byte master
    key that wraps each data subject's key. Without it personal fields are
    stored in clear and an erasure cannot make the event log's copies
    unreadable."""


class ConfigFile(FileTable, frozen=True):
    """The whole file: its top-level tables."""

    database: DatabaseTable = DatabaseTable()
    server: ServerTable = ServerTable()
    projections: ProjectionsTable = ProjectionsTable()
    privacy: PrivacyTable = PrivacyTable()
    sources: Table = msgspec.field(default_factory=dict)
    """``[sources.NAME]`` tables, each a ``SourceTable``."""
    tokens: Table = msgspec.field(default_factory=dict)
    """``[tokens.NAME]`` tables, each a ``TokenTable``."""
