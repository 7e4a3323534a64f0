"""A retry whose first answer this process has already read is answered from
memory: no read, no write, the same answer the log holds. Through the real
ASGI app, on both backends; the delivery log is made unreadable to show it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from starlette.testclient import TestClient

from infrastructure.persistence.database import Database
from infrastructure.settings import Settings
from tests.partner import Partner, post
from web.app import create_app


@contextmanager
def delivery_log_gone(database_url: str) -> Iterator[None]:
    """The ``deliveries`` table renamed away: any read of it fails at once."""
    engine = Database(database_url).engine()
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE deliveries RENAME TO deliveries_away"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE deliveries_away RENAME TO deliveries"))
        engine.dispose()


def test_a_retry_seen_before_is_answered_from_memory_with_the_logged_answer(
    settings: Settings, partner: Partner
) -> None:
    request = partner.order_created("ord_1")
    with TestClient(create_app(settings)) as client:
        status, first, _ = post(client, request)
        assert (status, first["outcome"]) == (200, "applied")
        status, logged, headers = post(client, request)  # read from the log
        assert (status, logged["outcome"]) == (200, "duplicate")

        with delivery_log_gone(settings.database_url):
            status, remembered, again = post(client, request)
            assert (status, remembered) == (200, logged)
            assert again["idempotent-replayed"] == headers["idempotent-replayed"]
            new = post(client, partner.order_created("ord_2"))
            assert new[0] == 503  # what is not remembered needs the store

    with TestClient(create_app(settings)) as other_process:
        status, from_log, _ = post(other_process, request)
        assert (status, from_log) == (200, logged)
