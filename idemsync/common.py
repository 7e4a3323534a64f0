"""What the commands share: building the sources of the settings."""

from __future__ import annotations

from infrastructure.settings import Settings


def build_sources(settings: Settings) -> None:
    """Build every source's scheme and mapping: configuration errors show now,
    not in the first request."""
    from infrastructure.intake import Source

    for source in settings.sources.values():
        Source.build(source)
