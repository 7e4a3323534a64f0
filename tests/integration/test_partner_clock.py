"""A partner's event time from the far future is bad input: an object
positioned by it would call every later event stale until then, frozen by a
single delivery. Event times more than ``clock_skew_seconds`` (a day by
default) past the server's clock are refused with 400; a ``sequence``, the
partner's own counter, is bounded by the schema only and never compared with
our clock. Both backends, through the ASGI app."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import msgspec
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from tests.partner import Partner, post
from tests.store import Store
from web.app import create_app

ORDER = {"customer_id": "cus_1", "currency": "EUR", "total_cents": 100}


def created_at(partner: Partner, order_id: str, at: str, **extra: object) -> bytes:
    return json.dumps(
        {
            "type": "order.created",
            "timestamp": at,
            "data": {"order_id": order_id, **ORDER, **extra},
        }
    ).encode()


def test_an_event_from_year_9999_is_refused_and_nothing_is_stored(
    client: TestClient, partner: Partner, store: Store
) -> None:
    body = created_at(partner, "ord_f1", "9999-12-31T23:59:59Z")
    status, answer, _ = post(client, partner.sign(body))
    assert status == 400, answer
    assert answer["error"] == "invalid_payload"
    assert answer["path"] == "$[0].occurred_at"
    assert "clock_skew_seconds" in answer["message"]
    assert store.count("deliveries") == 0
    assert store.count("idemsync_events") == 0


def test_an_event_less_than_a_day_ahead_is_accepted(
    client: TestClient, partner: Partner
) -> None:
    ahead = (datetime.now(UTC) + timedelta(hours=23)).isoformat()
    status, answer, _ = post(client, partner.sign(created_at(partner, "ord_f2", ahead)))
    assert (status, answer["outcome"]) == (200, "applied"), answer


def test_the_skew_is_configured_per_source(
    settings: Settings, partner: Partner, store: Store
) -> None:
    acme = msgspec.structs.replace(settings.sources["acme"], clock_skew_seconds=60)
    ahead = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()
    with TestClient(
        create_app(dataclasses.replace(settings, sources={"acme": acme}))
    ) as client:
        status, answer, _ = post(
            client, partner.sign(created_at(partner, "ord_f3", ahead))
        )
    assert status == 400, answer
    assert "60 s" in answer["message"]
    assert store.count("deliveries") == 0


def test_a_sequence_is_the_partners_counter_bounded_by_the_schema_only(
    client: TestClient, partner: Partner
) -> None:
    now = datetime.now(UTC).isoformat()
    largest = created_at(partner, "ord_f4", now, sequence=2**62)
    status, answer, _ = post(client, partner.sign(largest))
    assert (status, answer["outcome"]) == (200, "applied"), answer

    beyond = created_at(partner, "ord_f5", now, sequence=2**62 + 1)
    status, answer, _ = post(client, partner.sign(beyond))
    assert status == 400, answer
    assert answer["path"] == "$.data.sequence"
