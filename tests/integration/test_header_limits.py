"""The header limits as the app enforces them (``web/limits.py``), on both
backends: under any ASGI server (here the test client) a request over
``[server] max_headers`` or ``max_header_bytes`` is answered 431 before the
app reads its body or checks its signature; nothing is stored, and the
refusal is counted. ``tests/e2e/test_hostile_transport.py`` checks the
same limits in ``idemsync serve``'s protocol layer, over a socket.
"""

from __future__ import annotations

import dataclasses

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from tests.partner import Partner, Request
from tests.store import Store
from web.app import create_app
from web.limits import HeadLimits, HeadRules

MANY = {f"x-extra-{n}": "v" for n in range(3000)}
LARGE = {"x-extra": "a" * 1024 * 1024}


def refused(client: TestClient, source: str, reason: str) -> float:
    """``idemsync_requests_refused_total`` of ``source`` and ``reason``
    (0 when the series does not exist)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "idemsync_requests_refused_total" and sample.labels == {
                "source": source,
                "reason": reason,
            }:
                return sample.value
    return 0.0


def post(
    client: TestClient, request: Request, extra: dict[str, str] | None = None
) -> httpx.Response:
    return client.post(
        "/webhooks/acme",
        content=request.body,
        headers={**request.headers, **(extra or {})},
    )


@pytest.mark.parametrize(("kind", "extra"), [("count", MANY), ("size", LARGE)])
def test_a_signed_delivery_over_the_header_limits_is_431_and_stores_nothing(
    client: TestClient, partner: Partner, store: Store, kind: str, extra: dict[str, str]
) -> None:
    request = partner.order_created(f"ord_{kind}")
    response = post(client, request, extra)

    assert response.status_code == 431, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    expected = "more than 100 headers" if kind == "count" else "over 16384 bytes"
    assert response.json()["error"] == "headers_too_large"
    assert expected in response.json()["message"]
    assert store.count("deliveries") == 0
    assert store.count("idemsync_events") == 0
    assert refused(client, "acme", "headers_too_large") == 1
    # Nothing was recorded, not even its key: sent within the limits, the
    # same delivery is a first delivery.
    again = post(client, request)
    assert again.json()["outcome"] == "applied", again.text


def test_an_unknown_source_over_the_limits_is_counted_as_unknown(
    client: TestClient, partner: Partner
) -> None:
    request = partner.order_created("ord_nowhere")
    response = client.post(
        "/webhooks/nowhere", content=request.body, headers={**request.headers, **MANY}
    )

    assert response.status_code == 431
    assert refused(client, "_unknown", "headers_too_large") == 1
    assert refused(client, "acme", "headers_too_large") == 0


def test_every_route_is_bounded_but_only_webhooks_count_as_refused_deliveries(
    client: TestClient,
) -> None:
    response = client.get("/healthz", headers=LARGE)

    assert response.status_code == 431
    assert response.json()["error"] == "headers_too_large"
    assert refused(client, "acme", "headers_too_large") == 0
    assert refused(client, "_unknown", "headers_too_large") == 0


def test_the_limits_are_the_configured_ones(
    settings: Settings, partner: Partner, store: Store
) -> None:
    tight = dataclasses.replace(
        settings,
        server=msgspec.structs.replace(
            settings.server, max_header_bytes=4096, max_headers=20
        ),
    )
    with TestClient(create_app(tight)) as client:
        within = partner.order_created("ord_within")
        over_size = partner.order_created("ord_over_size")
        over_count = partner.order_created("ord_over_count")
        applied = post(client, within, {"x-pad": "a" * 2048})
        too_large = post(client, over_size, {"x-pad": "a" * 4096})
        too_many = post(client, over_count, {f"x-{n}": "v" for n in range(20)})

    assert applied.status_code == 200, applied.text
    assert too_large.status_code == 431
    assert too_many.status_code == 431
    assert store.keys() == {("acme", within.key)}


def test_the_app_publishes_its_rules_to_the_server_in_the_lifespan_state(
    client: TestClient, settings: Settings
) -> None:
    """What ``idemsync serve``'s protocol reads from uvicorn's ``app_state``:
    the configured limits, and a refusal that the app's metrics count."""
    rules = HeadRules.published(client.app_state)

    assert rules.limits == HeadLimits.of(settings)
    rules.refused("/webhooks/acme", "more than 100 headers")
    assert refused(client, "acme", "headers_too_large") == 1
