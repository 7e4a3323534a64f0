"""``/metrics`` of ``idemsync serve --workers 2``: whichever worker answers
the scrape, the counts are those of every worker together; the server logs
one JSON line per decision, without secrets."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ServerFactory
from tests.partner import Partner

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def applied_count(client: httpx.Client, base_url: str) -> float:
    text = client.get(f"{base_url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "idemsync_deliveries_total"
        and sample.labels == {"source": "acme", "outcome": "applied"}
    )


def test_every_scrape_counts_the_deliveries_of_all_workers(
    serve: ServerFactory, postgres_url: str, partner: Partner
) -> None:
    server = serve(postgres_url, workers=2)
    requests = [partner.order_created(f"ord_{n}") for n in range(40)]
    url = f"{server.base_url}/webhooks/acme"
    # A new connection per request, so that both workers take some.
    for request in requests:
        with httpx.Client(timeout=10) as client:
            response = client.post(url, content=request.body, headers=request.headers)
            assert response.json()["outcome"] == "applied"
    counts = set()
    for _ in range(10):
        with httpx.Client(timeout=10) as client:
            counts.add(applied_count(client, server.base_url))
    assert counts == {40.0}
    server.stop()
    decisions = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{") and '"idemsync.deliveries"' in line
    ]
    assert len(decisions) == 40
    assert {d["outcome"] for d in decisions} == {"applied"}
    assert {d["key"] for d in decisions} == {r.key for r in requests}
    assert len({d["pid"] for d in decisions}) == 2, "one worker took every request"
    assert partner.secret not in server.log_path.read_text()


def test_with_several_workers_answers_on_a_kept_connection_do_not_wait_for_acks(
    serve: ServerFactory, postgres_url: str
) -> None:
    """Nagle's algorithm is off on the workers' inherited socket: twenty
    requests on one connection take nowhere near 20 times 40 ms."""
    server = serve(postgres_url, workers=2)
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        client.get("/healthz")
        started = time.monotonic()
        for _ in range(20):
            assert client.get("/healthz").status_code == 200
        took = time.monotonic() - started
    assert took < 0.5, f"20 answers took {took:.2f} s: delayed ACKs"
