"""What the commands share: building the sources of the settings, and the
one line that describes each source."""

from __future__ import annotations

from infrastructure.settings import Settings, SourceSettings


def build_sources(settings: Settings) -> None:
    """Build every source's scheme and mapping: configuration errors show now,
    not in the first request."""
    from infrastructure.intake import Source

    for source in settings.sources.values():
        Source.build(source)


def describe_source(source: SourceSettings) -> str:
    """``acme: scheme standard-webhooks, mapping standard (default)``: what a
    source verifies with and maps with, as ``config check`` prints it and
    ``serve`` logs it at start. What else identifies a source's objects (its
    namespace) belongs in this line too."""
    default = " (default)" if source.mapping_is_default else ""
    return f"{source.name}: scheme {source.scheme}, mapping {source.mapping}{default}"
