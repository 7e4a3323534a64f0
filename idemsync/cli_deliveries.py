"""``idemsync deliveries …``: replay and prune the delivery log."""

from __future__ import annotations

from typing import Any


def add_commands(commands: Any) -> None:
    """Register ``idemsync deliveries`` and its subcommands."""
