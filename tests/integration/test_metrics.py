"""``/metrics`` (specification §9): a known mix of deliveries gives exact
counter values and histogram counts, through the real app, on both
backends."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from tests.partner import Partner, auth, post, send
from tests.read_models import caught_up
from web.app import create_app

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def series_of(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (found, labels) in samples if found == name]


def send_known_mix(client: TestClient, partner: Partner) -> None:
    """3 applied, 1 parked, 1 stale, 1 rejected, 1 ignored, 3 duplicates;
    refused: 1 bad signature, 1 unknown source, 1 invalid payload, 1 too
    large."""
    paid_early = partner.event("order.paid", order_id="ord_2", amount_cents=100)
    created = partner.order_created("ord_1", sequence=1)
    shipped = {"carrier": "DHL", "tracking_number": "T1"}
    for request, outcome in [
        (paid_early, "parked"),
        (created, "applied"),
        (
            partner.event("order.shipped", order_id="ord_1", sequence=3, **shipped),
            "applied",
        ),
        (
            partner.event("order.shipped", order_id="ord_1", sequence=2, **shipped),
            "stale",
        ),
        (
            partner.event("order.cancelled", order_id="ord_1", sequence=4, reason="x"),
            "rejected",
        ),
        (partner.event("invoice.sent", invoice_id="inv_1"), "ignored"),
        (partner.event("customer.upserted", customer_id="cus_9", name="A"), "applied"),
    ]:
        assert post(client, request)[1]["outcome"] == outcome
    for request in (created, created, paid_early):
        assert post(client, request)[1]["outcome"] == "duplicate"
    forged = dataclasses.replace(
        created, headers={**created.headers, "webhook-signature": "v1,AAAA"}
    )
    assert send(client, forged).status_code == 401
    assert send(client, created, source="nosuch").status_code == 404
    bad = partner.event("order.created", order_id="ord_3", total_cents="lots")
    assert send(client, bad).status_code == 400
    big = partner.sign(b'{"pad": "' + b"x" * 70_000 + b'"}')
    assert send(client, big).status_code == 413


def test_a_known_mix_of_deliveries_gives_exact_counters(
    client: TestClient, partner: Partner
) -> None:
    send_known_mix(client, partner)
    samples = scrape(client)
    expected = {
        "applied": 3,
        "parked": 1,
        "stale": 1,
        "rejected": 1,
        "ignored": 1,
        "duplicate": 3,
    }
    for outcome, count in expected.items():
        found = value(
            samples, "idemsync_deliveries_total", source="acme", outcome=outcome
        )
        assert found == count, outcome
    assert value(samples, "idemsync_retries_total", source="acme") == 3
    assert value(samples, "idemsync_retry_delay_seconds_count", source="acme") == 3
    # ord_2's payment still waits for its order.
    assert value(samples, "idemsync_parked_deliveries", source="acme") == 1
    for outcome, count in expected.items():
        if outcome == "duplicate":
            continue
        timed = value(
            samples,
            "idemsync_processing_seconds_count",
            source="acme",
            outcome=outcome,
        )
        assert timed == count, outcome
    refused = {
        ("acme", "unauthorized"): 1,
        ("acme", "invalid_payload"): 1,
        ("acme", "payload_too_large"): 1,
        ("_unknown", "unknown_source"): 1,
        ("acme", "store_unavailable"): 0,
    }
    for (source, reason), count in refused.items():
        found = value(
            samples, "idemsync_requests_refused_total", source=source, reason=reason
        )
        assert found == count, (source, reason)


def test_retry_delays_fall_in_the_bucket_of_their_delay(
    client: TestClient, partner: Partner
) -> None:
    request = partner.order_created("ord_1")
    post(client, request)
    post(client, request)
    samples = scrape(client)
    name = "idemsync_retry_delay_seconds_bucket"
    assert value(samples, name, source="acme", le="1.0") == 1
    assert value(samples, name, source="acme", le="+Inf") == 1
    assert value(samples, "idemsync_retry_delay_seconds_sum", source="acme") < 1


def test_labels_are_bounded_unknown_sources_make_no_series(
    client: TestClient, partner: Partner
) -> None:
    for number in range(5):
        send(client, partner.order_created(f"ord_{number}"), source=f"evil{number}")
    samples = scrape(client)
    sources = {
        labels["source"]
        for name in ("idemsync_deliveries_total", "idemsync_requests_refused_total")
        for labels in series_of(samples, name)
    }
    assert sources == {"acme", "_unknown"}
    found = value(
        samples,
        "idemsync_requests_refused_total",
        source="_unknown",
        reason="unknown_source",
    )
    assert found == 5


def test_projection_lag_and_position_are_read_from_the_store(
    client: TestClient, partner: Partner
) -> None:
    post(client, partner.order_created("ord_1"))
    caught_up(client)
    samples = scrape(client)
    projections = {
        labels["projection"]
        for labels in series_of(samples, "idemsync_projection_lag_events")
    }
    assert projections == {"orders", "customers", "revenue", "source_stats"}
    for name in projections:
        assert value(samples, "idemsync_projection_lag_events", projection=name) == 0
        assert value(samples, "idemsync_projection_position", projection=name) > 0
        assert value(samples, "idemsync_projection_failed", projection=name) == 0


def test_parked_backlog_is_read_from_the_store_until_the_object_is_created(
    client: TestClient, partner: Partner
) -> None:
    samples = scrape(client)
    assert series_of(samples, "idemsync_parked_deliveries") == [{"source": "acme"}]
    assert value(samples, "idemsync_parked_deliveries", source="acme") == 0
    assert value(samples, "idemsync_parked_oldest_seconds", source="acme") == 0

    paid = partner.event("order.paid", order_id="ord_1", amount_cents=100)
    shipped = partner.event(
        "order.shipped", order_id="ord_1", carrier="DHL", tracking_number="T1"
    )
    outcomes = [post(client, request)[1]["outcome"] for request in (paid, shipped)]
    assert outcomes == ["parked", "parked"]
    # A retry of a parked delivery is no second one waiting.
    assert post(client, paid)[1]["outcome"] == "duplicate"
    samples = scrape(client)
    assert value(samples, "idemsync_parked_deliveries", source="acme") == 2
    oldest = value(samples, "idemsync_parked_oldest_seconds", source="acme")
    assert 0 < oldest < 60, "since the first of them was received"
    later = value(scrape(client), "idemsync_parked_oldest_seconds", source="acme")
    assert later >= oldest, "the oldest only ages while it waits"

    # Its creating event releases both: nothing is waiting any more.
    assert post(client, partner.order_created("ord_1"))[1]["outcome"] == "applied"
    samples = scrape(client)
    assert value(samples, "idemsync_parked_deliveries", source="acme") == 0
    assert value(samples, "idemsync_parked_oldest_seconds", source="acme") == 0


@pytest.fixture
def guarded(settings: Settings) -> Iterator[TestClient]:
    app = create_app(
        dataclasses.replace(
            settings,
            server=msgspec.structs.replace(settings.server, metrics_require_token=True),
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_metrics_can_require_a_reader_token(guarded: TestClient) -> None:
    assert guarded.get("/metrics").status_code == 401
    assert (
        "idemsync_deliveries_total"
        in guarded.get("/metrics", headers=auth("reader")).text
    )


def test_each_decision_is_one_json_log_line_with_its_fields(
    client: TestClient, partner: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    from infrastructure.logs import JsonFormatter

    caplog.set_level(logging.INFO, logger="idemsync.deliveries")
    request = partner.order_created("ord_1")
    post(client, request)
    post(client, request)
    lines = [
        json.loads(JsonFormatter().format(record))
        for record in caplog.records
        if record.name == "idemsync.deliveries"
    ]
    assert [line["outcome"] for line in lines] == ["applied", "duplicate"]
    first = lines[0]
    assert (first["source"], first["key"]) == ("acme", request.key)
    assert (first["aggregate"], first["version"]) == ("order/ord_1", 2)
    assert first["duration_ms"] >= 0
    assert first["level"] == "info" and first["logger"] == "idemsync.deliveries"
    assert partner.secret not in json.dumps(lines)
