"""A GitHub source with no ``mapping`` line (specification §11), loaded
from a TOML file and served by the real ASGI app, on both backends: GitHub's
own example payloads, signed as GitHub signs, are each answered ``ignored``
with their event name and recorded with their payload; a redelivery is a
``duplicate``; a form-encoded body is a 400 naming the mapping. Also: every
mapping, built in or a plugin, is named in its 400."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from infrastructure.settings import Settings, load_settings
from tests.github_examples import Example, examples, github_headers
from tests.partner import Partner, post
from tests.store import Store
from web.app import create_app

HUB_SECRET = "a-github-webhook-secret-of-32-bytes"
SHOP_SECRET = "shpss_" + "7" * 32
CONFIG = """\
[sources.acme]
scheme = "standard-webhooks"
secrets = ["env:ACME_SECRET"]

[sources.hub]
scheme = "github"
secrets = ["env:HUB_SECRET"]

[sources.shop]
scheme = "shopify"
secrets = ["env:SHOP_SECRET"]
mapping = "tests.plugin_mappings:map_shopify"
"""


@pytest.fixture
def settings(database_url: str, secret: str, tmp_path: Path) -> Settings:
    path = tmp_path / "idemsync.toml"
    path.write_text(CONFIG)
    environ = {
        "IDEMSYNC_DATABASE_URL": database_url,
        "ACME_SECRET": secret,
        "HUB_SECRET": HUB_SECRET,
        "SHOP_SECRET": SHOP_SECRET,
    }
    return load_settings(path, environ)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def deliver(
    client: TestClient, body: bytes, headers: dict[str, str], source: str = "hub"
) -> tuple[int, dict[str, object], dict[str, str]]:
    response = client.post(f"/webhooks/{source}", content=body, headers=headers)
    return response.status_code, response.json(), dict(response.headers)


def ignored_reason(event: str) -> str:
    return (
        f"github event {event!r} has no mapping; "
        'bring one (mapping = "package.module:function")'
    )


def test_the_github_source_without_a_mapping_line_gets_the_github_mapping(
    settings: Settings,
) -> None:
    hub = settings.sources["hub"]
    assert (hub.mapping, hub.mapping_is_default) == ("github", True)


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.event)
def test_each_github_example_is_ignored_with_its_event_name_and_recorded(
    client: TestClient, store: Store, example: Example
) -> None:
    headers = github_headers(HUB_SECRET, example.body, example.event)
    key = headers["x-github-delivery"]

    status, answer, _ = deliver(client, example.body, headers)

    assert status == 200, answer
    assert answer == {
        "outcome": "ignored",
        "source": "hub",
        "key": key,
        "reason": ignored_reason(example.event),
    }
    record = store.delivery("hub", key)
    assert record is not None
    assert record["outcome"] == "ignored"
    assert record["answer"] == answer
    assert record["payload"] == example.body
    assert store.topics("domain.order") == []


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.event)
def test_a_redelivery_of_each_github_example_is_a_duplicate_of_the_first_answer(
    client: TestClient, store: Store, example: Example
) -> None:
    headers = github_headers(HUB_SECRET, example.body, example.event)
    _, first, _ = deliver(client, example.body, headers)
    deliveries = store.count("deliveries")

    status, answer, replayed = deliver(client, example.body, headers)

    assert status == 200, answer
    assert answer == {
        "outcome": "duplicate",
        "source": "hub",
        "key": headers["x-github-delivery"],
        "first": first,
    }
    assert replayed["idempotent-replayed"] == "true"
    assert store.count("deliveries") == deliveries


def test_a_github_delivery_without_its_event_header_is_ignored_saying_so(
    client: TestClient,
) -> None:
    body = examples()[0].body
    status, answer, _ = deliver(client, body, github_headers(HUB_SECRET, body, None))
    assert status == 200, answer
    assert answer["outcome"] == "ignored"
    assert str(answer["reason"]).startswith("no X-GitHub-Event header")


def test_a_form_encoded_github_delivery_is_400_naming_the_mapping_and_not_stored(
    client: TestClient, store: Store
) -> None:
    ping = next(example for example in examples() if example.event == "ping")
    body = b"payload=" + quote(ping.body).encode()
    headers = github_headers(
        HUB_SECRET, body, "ping", content_type="application/x-www-form-urlencoded"
    )

    status, answer, _ = deliver(client, body, headers)

    assert status == 400, answer
    assert answer["error"] == "invalid_payload"
    assert (answer["path"], answer["mapping"]) == ("$", "github")
    message = str(answer["message"])
    assert "application/json" in message
    assert message.endswith("(mapping 'github')")
    assert store.delivery("hub", headers["x-github-delivery"]) is None


def test_a_standard_envelope_the_mapping_cannot_read_is_400_naming_standard(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_1", total_cents="4200")

    status, answer, _ = post(client, request)

    assert status == 400, answer
    assert answer == {
        "error": "invalid_payload",
        "message": "Expected `int`, got `str` (mapping 'standard')",
        "path": "$.data.total_cents",
        "mapping": "standard",
    }
    assert store.delivery("acme", request.key) is None


def test_a_payload_a_plugin_mapping_cannot_read_is_400_naming_that_mapping(
    client: TestClient, store: Store
) -> None:
    body = json.dumps(
        {
            "id": 820982911946154508,
            "created_at": "2026-11-01T10:00:00-05:00",
            "currency": "EUR",
            "total_price": 125.0,
        }
    ).encode()
    digest = hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest()
    headers = {
        "content-type": "application/json",
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": base64.b64encode(digest).decode(),
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    }

    status, answer, _ = deliver(client, body, headers, source="shop")

    assert status == 400, answer
    assert answer["path"] == "$.total_price"
    assert answer["mapping"] == "tests.plugin_mappings:map_shopify"
    assert str(answer["message"]).endswith(
        "(mapping 'tests.plugin_mappings:map_shopify')"
    )
    assert store.delivery("shop", headers["x-shopify-webhook-id"]) is None
