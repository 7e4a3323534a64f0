"""Alembic environment: online migrations only, on SQLite or PostgreSQL.

The database URL is, in order: ``config.attributes["database_url"]`` (set by
``idemsync db upgrade`` and by tests), the environment variable
``IDEMSYNC_DATABASE_URL``, or ``sqlite:///var/idemsync.db``. A caller may pass
an open SQLAlchemy connection as ``config.attributes["connection"]``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection, make_url

DEFAULT_DATABASE_URL = "sqlite:///var/idemsync.db"

config = context.config


def sqlalchemy_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver named for PostgreSQL URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def ensure_sqlite_directory(url: str) -> None:
    """Create the parent directory of a SQLite database file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def run(connection: Connection) -> None:
    """Run the migrations in one transaction on ``connection``. The target
    metadata is the projections' own tables (``read_model_metadata``): one
    schema per read model, which ``alembic revision --autogenerate`` and
    tests/integration/test_read_model_schema.py compare with the database."""
    from projections.catalog import only_read_models, read_model_metadata

    metadata = read_model_metadata()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=only_read_models(set(metadata.tables)),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the given connection, or connect to the configured database."""
    given = config.attributes.get("connection")
    if given is not None:
        run(given)
        return
    url = sqlalchemy_url(
        config.attributes.get("database_url")
        or os.environ.get("IDEMSYNC_DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )
    ensure_sqlite_directory(url)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            run(connection)
    finally:
        engine.dispose()


if config.config_file_name is not None and config.attributes.get(
    "configure_logging", True
):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    raise SystemExit("idemsync migrations run online only: drop --sql")
run_migrations_online()
