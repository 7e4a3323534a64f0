"""What the commands share: the database and the sources of the settings."""

from __future__ import annotations

from infrastructure.persistence.database import Database
from infrastructure.settings import Settings


def database_of(settings: Settings) -> Database:
    return Database.of(settings)


def build_sources(settings: Settings) -> None:
    """Build every source's scheme and mapping: configuration errors show now,
    not in the first request."""
    from infrastructure.intake import Source

    for source in settings.sources.values():
        Source.build(source)
