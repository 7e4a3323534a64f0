"""What a delivery record keeps of the request's headers: what an auditor
reads and what re-verification or a replay needs, bounded; never a cookie or
a credential, and nothing a sender could pad the record with. Both backends,
through the ASGI app."""

from __future__ import annotations

import dataclasses
import json

import msgspec
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from infrastructure.sources import MAX_STORED_HEADER_CHARS
from tests.partner import Partner, post
from tests.store import Store
from web.app import create_app


def test_a_record_keeps_the_schemes_headers_and_drops_the_rest(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_h1")
    padding = {f"x-pad-{n}": "p" * 100 for n in range(40)}
    headers = {
        **request.headers,
        **padding,
        "user-agent": "Svix-Webhooks/1.0",
        "cookie": "session=secret-cookie",
        "authorization": "Bearer idm_not-for-the-record",
    }
    response = client.post("/webhooks/acme", content=request.body, headers=headers)
    assert response.status_code == 200, response.text

    record = store.delivery("acme", request.key)
    assert record is not None
    stored = json.loads(record["headers"])
    assert set(stored) == {
        "content-type",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert stored["webhook-signature"] == request.headers["webhook-signature"]
    assert stored["user-agent"] == "Svix-Webhooks/1.0"


def test_a_long_kept_header_is_stored_cut_and_marked(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_h2")
    headers = {**request.headers, "user-agent": "u" * 9000}
    response = client.post("/webhooks/acme", content=request.body, headers=headers)
    assert response.status_code == 200, response.text

    record = store.delivery("acme", request.key)
    assert record is not None
    agent = json.loads(record["headers"])["user-agent"]
    assert agent.startswith("u" * MAX_STORED_HEADER_CHARS)
    assert agent.endswith(f"...[{9000 - MAX_STORED_HEADER_CHARS} more cut]")
    assert len(record["headers"]) < 4 * MAX_STORED_HEADER_CHARS


def test_store_headers_keeps_what_a_custom_mapping_reads(
    settings: Settings, partner: Partner, store: Store
) -> None:
    acme = msgspec.structs.replace(
        settings.sources["acme"], store_headers=("x-partner-topic",)
    )
    configured = dataclasses.replace(settings, sources={"acme": acme})
    request = partner.order_created("ord_h3")
    with TestClient(create_app(configured)) as client:
        headers = {**request.headers, "x-partner-topic": "orders/create"}
        status, _, _ = post(
            client, dataclasses.replace(request, headers=headers), "acme"
        )
    assert status == 200
    record = store.delivery("acme", request.key)
    assert record is not None
    stored = json.loads(record["headers"])
    assert stored["x-partner-topic"] == "orders/create"
