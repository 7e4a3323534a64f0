"""Operations under ``/admin`` (enabled by ``[server] admin_enabled`` until
access roles arrive)."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    return []
