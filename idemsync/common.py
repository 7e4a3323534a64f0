"""What the commands share: building the sources of the settings, and the
one line that describes each source."""

from __future__ import annotations

from collections.abc import Mapping

from infrastructure.settings import Settings, SourceSettings


def check_ready(settings: Settings) -> None:
    """Refuse (``NotReady``) a store that is not there or not migrated,
    before any service is built on it."""
    from infrastructure.persistence.database import Database

    database = Database.of(settings)
    try:
        database.check_ready()
    finally:
        database.close()


def build_sources(settings: Settings) -> None:
    """Build every source's scheme and mapping: configuration errors show now,
    not in the first request."""
    from infrastructure.sources import Source

    for source in settings.sources.values():
        Source.build(source)


def describe_source(
    source: SourceSettings, pinned: Mapping[str, str] | None = None
) -> str:
    """``acme: scheme standard-webhooks, mapping standard (default), namespace
    acme (its name)``: what a source verifies with, maps with and writes into,
    as ``config check`` prints it and ``serve`` logs it at start. ``pinned``:
    the store's namespace pins; None when the store could not be read (a
    source that names no namespace may then be pinned there)."""
    default = " (default)" if source.mapping_is_default else ""
    namespace, why = source.namespace_of(pinned or {})
    if pinned is None and source.namespace is None:
        why += ", unless the store pinned it"
    return (
        f"{source.name}: scheme {source.scheme}, mapping {source.mapping}{default}, "
        f"namespace {namespace} ({why})"
    )
