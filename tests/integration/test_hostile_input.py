"""Hostile input through the real app (issue 7, item 3), on both backends:
replayed signed requests, path tricks in the source name, SQL metacharacters
in every read and audit parameter, a 100 MB body, a slow body, invalid UTF-8,
deep JSON, repeated keys, numbers past 64 bits, and fuzzing of the webhook
endpoint and of every read/audit query parameter. Never a 500 (nor the 503
that stands for one), never a stored half-delivery, never a changed store
from a read.

Most requests go through the ASGI test client; those the client cannot make
(header bytes that are not text, a path that is not a URL, a body that
arrives slowly or never ends) are made as raw ASGI calls to the same app in
the test client's event loop. ``tests/e2e/test_hostile_transport.py`` does
what depends on the socket (uvicorn) over a real one.

Already covered elsewhere: the 400s of malformed and off-schema bodies and
the basic 401/404/413 (``test_bad_input.py``), NUL refusal by every mapping
(``tests/unit/test_nul_refusal.py``), Schemathesis over the documented
parameters and signed/unsigned webhook bodies of printable headers
(``test_openapi.py``).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from starlette.testclient import TestClient
from starlette.types import Message

from domain.receipt import Receipt
from infrastructure.schemes.standard_webhooks import decode_secret
from infrastructure.settings import Settings, SourceSettings
from tests.partner import WRONG_TOKEN, Partner, auth, make_settings, post
from tests.read_models import caught_up, snapshot
from tests.store import Store
from tests.webhook_bodies import BODIES, MAPPED, signed_headers
from web.state import app_state

MiB = 1024 * 1024
HANG_UP = b"<the client hangs up here>"
"""A body chunk that ``raw_call`` turns into ``http.disconnect``."""
BODY_TIMEOUT = 2.0
BILLING_SECRET = "billing-" + "k" * 24
STRIPE_SECRET = "whsec_" + "s" * 32
ENVELOPE_AT = "2026-11-01T10:00:00Z"


@pytest.fixture
def settings(database_url: str, secret: str) -> Settings:
    """``acme`` (Standard Webhooks) and one source of each other scheme, a
    body limit of 1 MiB and a body deadline of ``BODY_TIMEOUT``."""
    base = make_settings(database_url, secret, max_body_bytes=MiB)
    sources = {
        **base.sources,
        "open": SourceSettings(
            name="open", scheme="none", secrets=(), allow_unsigned=True
        ),
        "billing": SourceSettings(
            name="billing",
            scheme="hmac-sha256",
            secrets=(BILLING_SECRET,),
            signature_header="X-Billing-Signature",
            signature_prefix="sha256=",
            timestamp_header="X-Billing-Timestamp",
            key="body:$.event_id",
        ),
        "stripe": SourceSettings(
            name="stripe", scheme="stripe", secrets=(STRIPE_SECRET,), mapping="stripe"
        ),
        "github": SourceSettings(
            name="github",
            scheme="github",
            secrets=("gh-secret",),
            mapping="tests.plugin_mappings:map_github",
        ),
        "shopify": SourceSettings(
            name="shopify",
            scheme="shopify",
            secrets=("shpss_secret",),
            mapping="tests.plugin_mappings:map_shopify",
        ),
    }
    return dataclasses.replace(
        base,
        sources=MappingProxyType(sources),
        server=msgspec.structs.replace(base.server, body_timeout_seconds=BODY_TIMEOUT),
    )


def envelope(type_: str = "order.created", **data: Any) -> bytes:
    if type_ == "order.created":
        data = {
            "order_id": "ord_h",
            "customer_id": "cus_h",
            "currency": "EUR",
            "total_cents": 100,
            **data,
        }
    return json.dumps({"type": type_, "timestamp": ENVELOPE_AT, "data": data}).encode()


def signed(secret: str, body: bytes, key: str | None = None) -> dict[str, str]:
    """Standard Webhooks headers for any bytes, signed now."""
    return signed_headers(secret, key or f"msg_{uuid.uuid4().hex}", body)


# --- what was stored ---------------------------------------------------------


def assert_no_half_delivery(store: Store) -> None:
    """Every delivery record has its receipt in the event log, and every
    receipt its record: a delivery is stored whole or not at all."""
    with store.database.engine().connect() as conn:
        records = {
            Receipt.create_id(source, key)
            for source, key in conn.execute(
                text("SELECT source, idempotency_key FROM deliveries")
            )
        }
        receipts = {
            uuid.UUID(str(originator))
            for (originator,) in conn.execute(
                text(
                    "SELECT originator_id FROM idemsync_events "
                    "WHERE topic = 'domain.receipt:Receipt.Issued'"
                )
            )
        }
    assert records == receipts, (records - receipts, receipts - records)


def fingerprint(store: Store) -> tuple[Any, ...]:
    """The delivery log and the event log, as far as a read could change them."""
    with store.database.engine().connect() as conn:
        deliveries = conn.execute(
            text(
                "SELECT source, idempotency_key, outcome, attempts FROM deliveries "
                "ORDER BY source, idempotency_key"
            )
        ).all()
        events = conn.execute(
            text(
                "SELECT originator_id, originator_version FROM idemsync_events "
                "ORDER BY originator_id, originator_version"
            )
        ).all()
    return tuple(map(tuple, deliveries)), tuple(map(tuple, events))


# --- raw ASGI, for what an HTTP client will not send -------------------------


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes
    pulled: int
    """How many body messages the app asked for."""
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)


Body = Iterable[bytes] | Callable[[], AsyncIterator[bytes]]


def raw_call(
    client: TestClient,
    method: str,
    path: str,
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    query: bytes = b"",
    body: Body = (b"",),
) -> Raw:
    """``raw_request`` to the app under test, in the test client's event
    loop (where other requests are served meanwhile)."""
    assert client.portal is not None
    return client.portal.call(
        functools.partial(
            raw_request, client, method, path, headers=headers, query=query, body=body
        )
    )


async def raw_request(
    client: TestClient,
    method: str,
    path: str,
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    query: bytes = b"",
    body: Body = (b"",),
) -> Raw:
    """One request with any header bytes, any path, and a body given as
    chunks (an iterable, or an async generator function for one that takes
    its time); the body ends with the last chunk, or ``HANG_UP``."""
    started = time.monotonic()
    answered = anyio.Event()
    out: dict[str, Any] = {"status": 0, "headers": {}, "body": b"", "pulled": 0}
    chunks = body() if callable(body) else _async(body)

    async def receive() -> Message:
        if out.get("ended"):
            await answered.wait()
            return {"type": "http.disconnect"}
        out["pulled"] += 1
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            out["ended"] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        if chunk is HANG_UP:
            out["ended"] = True
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in message.get("headers", [])
            }
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")
            if not message.get("more_body", False):
                answered.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": quote(path, safe="/%").encode("ascii"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
        "state": {},
    }
    await client.app(scope, receive, send)
    return Raw(
        out["status"],
        out["headers"],
        out["body"],
        out["pulled"],
        time.monotonic() - started,
    )


async def _async(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# --- signed-request replay ---------------------------------------------------


def test_a_signed_request_replayed_after_the_tolerance_is_401_and_changes_nothing(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_replay")
    assert post(client, request)[0] == 200
    before = fingerprint(store)
    intake = app_state(client.app).pipeline
    signed_at = int(request.headers["webhook-timestamp"])
    intake.clock = lambda: signed_at + 301.0  # tolerance_seconds = 300

    status, answer, headers = post(client, request)

    assert (status, answer) == (
        401,
        {"error": "unauthorized", "message": "signature missing or invalid"},
    )
    assert "idempotent-replayed" not in headers
    assert fingerprint(store) == before


def test_a_signed_request_replayed_within_the_tolerance_is_a_duplicate(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_replay")
    first = post(client, request)
    intake = app_state(client.app).pipeline
    signed_at = int(request.headers["webhook-timestamp"])
    intake.clock = lambda: signed_at + 299.0

    status, answer, headers = post(client, request)

    assert status == 200
    assert headers["idempotent-replayed"] == "true"
    assert answer == {
        "outcome": "duplicate",
        "source": "acme",
        "key": request.key,
        "first": first[1],
    }
    assert store.count("deliveries") == 1
    assert_no_half_delivery(store)


# --- path tricks in the source name -------------------------------------------

SOURCE_TRICKS = [
    "..",
    "%2e%2e",
    "%2E%2E%2Facme",
    "..%2facme",
    "..%2F..%2Fviews%2Frevenue",
    "acme%2f..%2fopen",
    "x%2f..%2facme",
    "%252e%252e%252facme",
    "acme%00",
    "acme%00.json",
    "%00",
    "ACME",
    "Acme",
    "acme%20",
    "%20acme",
    "acme%09",
    "acme%0d%0a",
    "ac%E2%80%8Bme",  # zero-width space
    "%EF%BD%81cme",  # fullwidth a
    "%D0%B0cme",  # Cyrillic a
    "acm%C3%A9",  # é composed
    "acme%CC%81",  # combining accent
    "%C4%B1cme",  # dotless i, upper-cases to I
    "acme;open",
    "acme%3Bopen",
    "acme%23",
    "acme%3F",
    "%ff%fe",
    "a" * 60_000,
]


def test_path_tricks_in_the_source_name_are_404_and_reach_no_source(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_trick")
    for trick in SOURCE_TRICKS:
        response = client.post(
            f"/webhooks/{trick}", content=request.body, headers=request.headers
        )
        assert response.status_code == 404, (trick[:60], response.text)
        assert response.json()["error"] in ("unknown_source", "not_found"), trick
    assert store.count("deliveries") == 0
    assert store.count("idemsync_events") == 0


def test_a_trailing_slash_after_the_source_is_redirected_to_the_same_source(
    client: TestClient, partner: Partner, store: Store
) -> None:
    """Not a trick that reaches another source: the documented 307 that
    drops a trailing ``/`` (an encoded one decodes to the same path)."""
    request = partner.order_created("ord_trick")
    for trailing in ("/", "%2F", "%2f"):
        response = client.post(
            f"/webhooks/acme{trailing}",
            content=request.body,
            headers=request.headers,
            follow_redirects=False,
        )
        assert response.status_code == 307, trailing
        assert response.headers["location"] == "/webhooks/acme"
    assert store.count("deliveries") == 0


RAW_SOURCE_PATHS = [
    "/webhooks/../webhooks/acme",
    "/webhooks/./acme",
    "/webhooks//acme",
    "/webhooks/acme/../open",
    "/webhooks/acme\x00",
    "/webhooks/\x00",
    "/webhooks/acme\n",
    "/webhooks/acme\r\nX-Injected: 1",
    "/webhooks/\ufffd",
    "/webhooks/" + "\u0430" * 300,
]
"""Paths as uvicorn passes them after percent-decoding (any text)."""


def test_a_source_path_no_client_would_send_is_404_and_reaches_no_source(
    client: TestClient, partner: Partner, store: Store
) -> None:
    """Raw ASGI: never normalised by a client on the way."""
    request = partner.order_created("ord_trick")
    headers = [(k.encode(), v.encode()) for k, v in request.headers.items()]
    for path in RAW_SOURCE_PATHS:
        answer = raw_call(client, "POST", path, headers=headers, body=[request.body])
        assert answer.status == 404, (path, answer.body)
        assert answer.json()["error"] in ("unknown_source", "not_found"), path
    assert store.count("deliveries") == 0


# --- SQL metacharacters in every read and audit parameter ----------------------

METACHARACTERS = [
    "'",
    "''",
    '"',
    ";",
    "--",
    "/*",
    "*/",
    "%",
    "_",
    "\\",
    "\\'",
    "ord_%",
    "ord__",
    "ord\\_1",
    "ord_1'--",
    "ord_1' OR '1'='1",
    "msg_seed_%",
    "ac%",
    "a_me",
    "cus_%",
    "x'; DROP TABLE deliveries; --",
    "1; DELETE FROM idemsync_events",
    "1 OR 1=1",
    "' UNION SELECT * FROM deliveries --",
    "ord_[1]",
    "ord_*",
    "$1",
    ":id",
    "?",
]
KNOWN = {
    "order_id": "ord_1",
    "customer_id": "cus_1",
    "source": "acme",
    "key": "msg_seed_1",
    "type": "order",
    "id": "ord_1",
    "name": "orders",
}


def seed(client: TestClient, partner: Partner) -> None:
    """Two orders, a customer, a parked and an ignored delivery, caught up."""
    for request in (
        partner.order_created("ord_1", customer_id="cus_1", key="msg_seed_1"),
        partner.order_created("ord_2", customer_id="cus_2", key="msg_seed_2"),
        partner.event("order.paid", order_id="ord_1", amount_cents=5000),
        partner.event("order.paid", order_id="ord_9", amount_cents=1),
        partner.event("customer.upserted", customer_id="cus_1", email="a@b"),
        partner.event("invoice.sent", invoice_id="inv_1"),
    ):
        assert post(client, request)[0] in (200, 202)
    caught_up(client)


def read_operations(client: TestClient) -> list[tuple[str, str, dict[str, Any]]]:
    """Every GET of the read, audit and admin APIs: method, path template,
    OpenAPI operation."""
    doc = client.get("/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method == "get"
        and operation.get("security")
        and path.startswith(("/views", "/audit", "/admin"))
    ]


def items_of(body: Any) -> list[Any] | None:
    if isinstance(body, dict):
        for name in ("items", "events"):
            if isinstance(body.get(name), list):
                return list(body[name])
    return None


def stored_payloads(client: TestClient) -> dict[str, str]:
    """Every stored delivery's raw payload (as the audit API gives it), by key."""
    listed = client.get(
        "/audit/deliveries", params={"limit": 500}, headers=auth("auditor")
    ).json()["items"]
    assert len(listed) < 500
    return {
        item["key"]: client.get(
            f"/audit/deliveries/{item['source']}/{item['key']}",
            headers=auth("auditor"),
        ).json()["payload"]
        for item in listed
    }


def test_sql_metacharacters_in_every_read_and_audit_parameter_are_4xx_or_empty(
    client: TestClient, partner: Partner, store: Store, database_url: str
) -> None:
    seed(client, partner)
    before, models = fingerprint(store), snapshot(database_url)
    payloads = stored_payloads(client)
    tried = 0
    for method, path, operation in read_operations(client):
        role = operation["x-role"]
        for parameter in operation.get("parameters", []):
            name, where = parameter["name"], parameter["in"]
            if where not in ("query", "path"):
                continue
            for value in METACHARACTERS:
                if where == "path":
                    url = path.format(**{**KNOWN, name: quote(value, safe="")})
                    response = client.request(method, url, headers=auth(role))
                else:
                    url = path.format(**KNOWN)
                    response = client.request(
                        method, url, params={name: value}, headers=auth(role)
                    )
                tried += 1
                label = f"{method} {url} {name}={value!r}"
                assert response.status_code in (200, 400, 404), label
                if response.status_code != 200:
                    assert (
                        response.json()["error"]
                        in (
                            "bad_parameter",
                            "not_found",
                            "unknown_projection",
                        )
                        or "known" in response.json()
                    ), label
                    continue
                # 200 only where the value is a plain filter: nothing matches
                # it, but for the payload search, which finds it literally.
                assert where == "query", label
                found = items_of(response.json())
                if name == "contains":
                    assert found is not None, label
                    wanted = sorted(k for k, text in payloads.items() if value in text)
                    assert sorted(item["key"] for item in found) == wanted, label
                    continue
                assert found == [], label
    assert tried > 300
    assert fingerprint(store) == before
    assert snapshot(database_url) == models


def test_a_metacharacter_filter_matches_nothing_while_the_exact_value_matches(
    client: TestClient, partner: Partner
) -> None:
    """The filters compare as values (bound parameters), not as patterns."""
    seed(client, partner)
    reader, auditor = auth("reader"), auth("auditor")
    exact = client.get("/views/orders", params={"customer_id": "cus_1"}, headers=reader)
    assert [o["order_id"] for o in exact.json()["items"]] == ["ord_1"]
    by_source = client.get(
        "/audit/deliveries", params={"source": "acme"}, headers=auditor
    )
    assert len(by_source.json()["items"]) == 6
    for pattern in ("cus_%", "cus__", "%", "_us_1", "cus\\_1", "CUS_1"):
        found = client.get(
            "/views/orders", params={"customer_id": pattern}, headers=reader
        )
        assert found.json()["items"] == [], pattern
    for pattern in ("ac%", "%", "a_me", "ACME", "acme'--"):
        found = client.get(
            "/audit/deliveries", params={"source": pattern}, headers=auditor
        )
        assert found.json()["items"] == [], pattern
    for path in (
        "/views/orders/ord_%25",
        "/views/orders/ord__",
        "/views/customers/cus_%25",
        "/audit/deliveries/acme/msg_seed_%25",
        "/audit/deliveries/ac%25/msg_seed_1",
        "/audit/aggregates/order/ord_%25",
        "/audit/aggregates/order/ord__/events",
        "/audit/aggregates/ord%25/ord_1",
    ):
        assert client.get(path, headers=auditor).status_code == 404, path


# --- a 100 MB body, a slow body, a client that hangs up ------------------------


def endless(pulled_limit: int, chunk: bytes) -> Callable[[], AsyncIterator[bytes]]:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(pulled_limit):
            yield chunk

    return chunks


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_100_mb_body_is_413_after_reading_at_most_the_limit(
    client: TestClient, partner: Partner, store: Store, declared: bool
) -> None:
    request = partner.order_created("ord_big")
    headers = [(k.encode(), v.encode()) for k, v in request.headers.items()]
    if declared:
        headers.append((b"content-length", str(100 * MiB).encode()))
    answer = raw_call(
        client,
        "POST",
        "/webhooks/acme",
        headers=headers,
        body=endless(100, b"x" * MiB),
    )
    assert answer.status == 413
    assert answer.json()["error"] == "payload_too_large"
    assert answer.headers["connection"] == "close"
    # The limit is 1 MiB: Content-Length refuses before a byte is read; a
    # chunked body is read up to the chunk that passes the limit.
    assert answer.pulled == (0 if declared else 2)
    assert store.count("deliveries") == 0


def test_a_slow_body_is_408_within_the_deadline_and_others_are_served_meanwhile(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_slow")
    headers = [(k.encode(), v.encode()) for k, v in request.headers.items()]

    async def trickle() -> AsyncIterator[bytes]:
        for byte in request.body:  # a byte every 0.2 s: 30 s for this body
            await anyio.sleep(0.2)
            yield bytes([byte])

    assert client.portal is not None
    slow = client.portal.start_task_soon(
        functools.partial(
            raw_request, client, "POST", "/webhooks/acme", headers=headers, body=trickle
        )
    )
    started = time.monotonic()
    fast = partner.order_created("ord_fast")
    assert post(client, fast)[0] == 200
    assert client.get("/healthz").status_code == 200
    assert time.monotonic() - started < BODY_TIMEOUT, "others waited for it"
    answer = slow.result(timeout=BODY_TIMEOUT + 5)

    assert answer.status == 408
    assert answer.json() == {
        "error": "body_timeout",
        "message": f"body not received within {BODY_TIMEOUT:g} s",
    }
    assert answer.headers["connection"] == "close"
    assert BODY_TIMEOUT <= answer.seconds < BODY_TIMEOUT + 3.0
    assert store.keys() == {("acme", fast.key)}
    assert_no_half_delivery(store)


def test_a_client_that_hangs_up_mid_body_is_not_an_internal_error(
    client: TestClient, partner: Partner, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    request = partner.order_created("ord_gone")
    headers = [(k.encode(), v.encode()) for k, v in request.headers.items()]

    answer = raw_call(
        client,
        "POST",
        "/webhooks/acme",
        headers=headers,
        body=[request.body[:10], HANG_UP],
    )

    assert answer.status == 400  # nobody reads it; counted and logged as such
    assert answer.json()["error"] == "client_disconnected"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert store.count("deliveries") == 0
    assert refused(client, "acme", "client_disconnected") == 1
    assert refused(client, "acme", "internal_error") == 0


def refused(client: TestClient, source: str, reason: str) -> float:
    """``idemsync_requests_refused_total`` of ``source`` and ``reason``."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "idemsync_requests_refused_total" and sample.labels == {
                "source": source,
                "reason": reason,
            }:
                return sample.value
    raise AssertionError(f"no refused series for {source} {reason}")


# --- invalid UTF-8 -------------------------------------------------------------

GOOD = envelope()


BAD_UTF8 = [
    ("in a value", GOOD.replace(b'"ord_h"', b'"ord_\xff"')),
    ("in a known key", GOOD.replace(b'"order_id"', b'"order_\xc3id"')),
    (
        "in an unknown key",
        GOOD.replace(b'"currency"', b'"note\xfe": 1, "currency"'),
    ),
    (
        "in an unknown value",
        GOOD.replace(b'"currency"', b'"note": "\xe2\x82", "currency"'),
    ),
    ("in the type", GOOD.replace(b"order.created", b"order.cr\x80ated")),
    (
        "in an unmapped type",
        envelope("invoice.sent").replace(b"invoice", b"inv\xffoice"),
    ),
    ("an overlong slash", GOOD.replace(b'"ord_h"', b'"ord\xc0\xafh"')),
    ("a UTF-16 surrogate", GOOD.replace(b'"ord_h"', b'"ord\xed\xa0\x80h"')),
    ("past U+10FFFF", GOOD.replace(b'"ord_h"', b'"ord\xf4\x90\x80\x80h"')),
    ("cut at the end", GOOD + b"\xe2\x82"),
    ("latin-1", GOOD.replace(b'"cus_h"', '"cus_é"'.encode("latin-1"))),
]


def test_invalid_utf8_anywhere_in_a_signed_body_is_400_saying_so(
    client: TestClient, secret: str, store: Store
) -> None:
    for where, body in BAD_UTF8:
        headers = signed(secret, body)
        for _ in range(2):  # the same on the retry
            response = client.post("/webhooks/acme", content=body, headers=headers)
            assert response.status_code == 400, (where, response.text)
            answer = response.json()
            assert answer["error"] == "invalid_payload", where
            assert answer["message"].startswith("body is not valid UTF-8"), answer
            assert answer["path"] == "$", where
    assert store.count("deliveries") == 0


@pytest.mark.parametrize(
    "header", ["webhook-id", "webhook-timestamp", "webhook-signature"]
)
def test_invalid_utf8_or_control_bytes_in_a_signature_header_are_401_not_a_retry(
    client: TestClient, secret: str, store: Store, header: str
) -> None:
    """Header bytes are latin-1 to Starlette: a signature or timestamp that is
    not ASCII is unauthorized (it was a 503 'internal_error', retried for
    ever, for the signature)."""
    body = envelope()
    for junk in (b"\xff\xfe", b"\xc3", b"\x80abc", b"\x00", b"\x7f", b"\x85x"):
        headers = [
            (name.encode(), value.encode() + (junk if name == header else b""))
            for name, value in signed(secret, body).items()
        ]
        answer = raw_call(
            client, "POST", "/webhooks/acme", headers=headers, body=[body]
        )
        assert answer.status == 401, (junk, answer.body)
        assert answer.json()["error"] == "unauthorized"
    assert store.count("deliveries") == 0


def test_a_signed_request_replayed_with_its_id_padded_is_not_a_new_delivery(
    client: TestClient, secret: str, store: Store
) -> None:
    """NBSP and NEL are whitespace to ``str.strip`` but not to HTTP (h11
    passes them on): the signature was checked on the stripped id while the
    key kept them, so a replay within the tolerance became a new delivery."""
    body = envelope()
    headers = signed(secret, body)
    first = client.post("/webhooks/acme", content=body, headers=headers)
    assert first.json()["outcome"] == "applied"
    for pad in (b"\xa0", b"\x85", b"\xa0\xa0", b"\t\xa0"):
        replay = [
            (name.encode(), value.encode() + (pad if name == "webhook-id" else b""))
            for name, value in headers.items()
        ]
        answer = raw_call(client, "POST", "/webhooks/acme", headers=replay, body=[body])
        assert answer.status == 401, (pad, answer.body)
    assert store.keys() == {("acme", headers["webhook-id"])}
    assert_no_half_delivery(store)


def test_a_key_header_that_is_not_utf8_is_verified_over_its_bytes_and_kept_as_latin1(
    client: TestClient, secret: str, store: Store
) -> None:
    """A sender signs the bytes it sends. A ``webhook-id`` whose bytes are
    not UTF-8 is verified over those bytes, and its key is their latin-1
    text (as Starlette reads them)."""
    body = envelope()
    key, at = b"msg_\xff\xc3", str(int(time.time()))
    mac = hmac.new(
        decode_secret(secret), key + f".{at}.".encode() + body, hashlib.sha256
    )
    headers = [
        (b"webhook-id", key),
        (b"webhook-timestamp", at.encode()),
        (b"webhook-signature", b"v1," + base64.b64encode(mac.digest())),
        (b"content-type", b"application/json"),
    ]
    answer = raw_call(client, "POST", "/webhooks/acme", headers=headers, body=[body])
    assert answer.status == 200, answer.body
    assert answer.json()["key"] == key.decode("latin-1")
    assert store.keys() == {("acme", key.decode("latin-1"))}
    assert_no_half_delivery(store)


def test_a_non_ascii_webhook_id_signed_over_utf8_is_accepted_and_kept_as_sent(
    client: TestClient, secret: str, store: Store
) -> None:
    """The reference library signs ``webhook-id`` as UTF-8 and sends those
    bytes; it was a 401 when the server signed the latin-1 text again."""
    body, key = envelope(), "msg_é_東京"
    headers = [
        (name.encode(), value.encode())
        for name, value in signed(secret, body, key).items()
    ]
    answer = raw_call(client, "POST", "/webhooks/acme", headers=headers, body=[body])
    assert answer.status == 200, answer.body
    assert answer.json()["key"] == key
    assert store.keys() == {("acme", key)}
    again = raw_call(client, "POST", "/webhooks/acme", headers=headers, body=[body])
    assert again.json()["outcome"] == "duplicate"


def test_a_nul_in_the_idempotency_key_is_a_missing_key_not_a_store_error(
    client: TestClient, store: Store
) -> None:
    """PostgreSQL text cannot hold NUL: a key with one was a 503 there,
    retried for ever. Signed (billing: the key is in the body) or not."""
    body = json.dumps({"event_id": "evt_\u0000", **json.loads(envelope())}).encode()
    at = str(int(time.time()))
    digest = hmac.new(BILLING_SECRET.encode(), f"{at}.".encode() + body, "sha256")
    response = client.post(
        "/webhooks/billing",
        content=body,
        headers={
            "x-billing-signature": "sha256=" + digest.hexdigest(),
            "x-billing-timestamp": at,
        },
    )
    assert (response.status_code, response.json()["error"]) == (400, "missing_key")
    unsigned = raw_call(
        client,
        "POST",
        "/webhooks/open",
        headers=[(b"idempotency-key", b"k\x00")],
        body=[envelope()],
    )
    assert (unsigned.status, unsigned.json()["error"]) == (400, "missing_key")
    assert store.count("deliveries") == 0


# --- deep JSON, repeated keys, numbers past 64 bits --------------------------

DEEP = 100_000


DEEP_BODIES = [
    b'{"type": "order.paid", "timestamp": "2026-11-01T10:00:00Z", "data": '
    + b"[" * DEEP
    + b"]" * DEEP
    + b"}",
    b'{"type": "order.paid", "timestamp": "2026-11-01T10:00:00Z", "data": '
    b'{"order_id": "o", "amount_cents": 1, "note": '
    + b'{"a": ' * DEEP
    + b"1"
    + b"}" * DEEP
    + b"}}",
    b'{"type": "invoice.sent", "x": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    b'{"type": "invoice.sent", "x": ' + b"[" * DEEP,
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP,
]
"""In data, in an unknown field, in an unmapped type, unclosed, at the
top, of objects."""


def test_json_nested_100000_deep_is_400_without_a_crash(
    client: TestClient, secret: str, store: Store
) -> None:
    for number, body in enumerate(DEEP_BODIES):
        response = client.post(
            "/webhooks/acme", content=body, headers=signed(secret, body)
        )
        assert response.status_code == 400, (number, response.text[:300])
        assert response.json()["error"] == "invalid_payload", number
    assert store.count("deliveries") == 0
    assert client.get("/healthz").status_code == 200


REPEATED = [
    (
        b'{"type": "order.created", "timestamp": "2026-11-01T10:00:00Z", "data": '
        b'{"order_id": "ord_a", "order_id": "ord_b", "customer_id": "c", '
        b'"currency": "EUR", "total_cents": 1}}',
        "$.data.order_id",
    ),
    (
        b'{"type": "order.paid", "type": "order.created", '
        b'"timestamp": "2026-11-01T10:00:00Z", "data": {"order_id": "o", '
        b'"customer_id": "c", "currency": "EUR", "total_cents": 1}}',
        "$.type",
    ),
    (
        b'{"type": "order.paid", "timestamp": "2026-11-01T10:00:00Z", '
        b'"data": {"order_id": "o", "amount_cents": 1, "amount_cents": 999}}',
        "$.data.amount_cents",
    ),
    (
        b'{"type": "invoice.sent", "data": {"lines": [{"a": 1}, {"b": 1, "b": 1}]}}',
        "$.data.lines[1].b",
    ),
    (
        b'{"type": "order.paid", "timestamp": "2026-11-01T10:00:00Z", '
        b'"data": {"order_id": "o", "\\u0061mount_cents": 1, '
        b'"amount_cents": 2}}',
        "$.data.amount_cents",
    ),
    (
        b'{"type": "order.paid", "timestamp": "2026-11-01T10:00:00Z", '
        b'"timestamp": "2026-11-01T10:00:00Z", '
        b'"data": {"order_id": "o", "amount_cents": 1}}',
        "$.timestamp",
    ),
]
"""A repeated key and its path: an order id, the type, an amount, in an
unmapped type, spelt with an escape, with the same value twice."""


def test_a_key_repeated_in_a_json_object_is_400_naming_it_on_every_retry(
    client: TestClient, secret: str, store: Store
) -> None:
    """Safer than last-wins (README "Outcomes"): a body two parsers may read
    as two different deliveries is refused, whichever the mapping."""
    for body, path in REPEATED:
        headers = signed(secret, body)
        for _ in range(3):
            response = client.post("/webhooks/acme", content=body, headers=headers)
            assert response.status_code == 400, (path, response.text)
            answer = response.json()
            assert answer["error"] == "invalid_payload", path
            assert answer["path"] == path
            assert "duplicate key" in answer["message"], path
    assert store.count("deliveries") == 0


def test_a_repeated_key_is_refused_for_a_plugin_mapping_and_the_body_key_too(
    client: TestClient, store: Store
) -> None:
    """Also where the idempotency key is read from the body (billing:
    ``$.event_id``), and for every mapping (GitHub's plugin here, unsigned
    source ``open``)."""
    body = (
        b'{"event_id": "evt_1", "event_id": "evt_2", "type": "order.created", '
        b'"timestamp": "2026-11-01T10:00:00Z", "data": {"order_id": "o", '
        b'"customer_id": "c", "currency": "EUR", "total_cents": 1}}'
    )
    at = str(int(time.time()))
    digest = hmac.new(BILLING_SECRET.encode(), f"{at}.".encode() + body, "sha256")
    billing = client.post(
        "/webhooks/billing",
        content=body,
        headers={
            "x-billing-signature": "sha256=" + digest.hexdigest(),
            "x-billing-timestamp": at,
        },
    )
    assert billing.status_code == 400, billing.text
    assert billing.json()["path"] == "$.event_id"
    opened = client.post(
        "/webhooks/open", content=body, headers={"idempotency-key": "k1"}
    )
    assert (opened.status_code, opened.json()["path"]) == (400, "$.event_id")
    github = b'{"action": "opened", "action": "closed"}'
    mac = hmac.new(b"gh-secret", github, hashlib.sha256).hexdigest()
    answer = client.post(
        "/webhooks/github",
        content=github,
        headers={
            "x-hub-signature-256": f"sha256={mac}",
            "x-github-delivery": str(uuid.uuid4()),
            "x-github-event": "issues",
        },
    )
    assert (answer.status_code, answer.json()["path"]) == (400, "$.action")
    assert store.count("deliveries") == 0


BIG = [2**63, 2**64, 2**64 + 1, -(2**63) - 1, -(2**64), 10**30, 10**4000]


NUMBER_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    ("order.created", "total_cents", {}),
    ("order.created", "sequence", {"total_cents": 1}),
    ("order.paid", "amount_cents", {"order_id": "o"}),
    ("order.refunded", "amount_cents", {"order_id": "o"}),
    (
        "order.shipped",
        "sequence",
        {"order_id": "o", "carrier": "c", "tracking_number": "t"},
    ),
    ("customer.upserted", "sequence", {"customer_id": "c"}),
    ("customer.deleted", "sequence", {"customer_id": "c"}),
]


def test_a_number_beyond_64_bits_is_400_naming_the_field(
    client: TestClient, secret: str, store: Store
) -> None:
    for type_, field, data in NUMBER_FIELDS:
        for number in BIG:
            body = envelope(type_, **{**data, field: "N"})
            body = body.replace(b'"N"', b"%d" % number)
            response = client.post(
                "/webhooks/acme", content=body, headers=signed(secret, body)
            )
            label = (type_, field, str(number)[:30])
            assert response.status_code == 400, (label, response.text)
            answer = response.json()
            assert answer["error"] == "invalid_payload", label
            assert answer["path"] == f"$.data.{field}", label
    assert store.count("deliveries") == 0


def test_a_number_beyond_64_bits_in_a_field_no_mapping_reads_is_ignored_as_the_field(
    client: TestClient, secret: str, store: Store
) -> None:
    """Unknown fields are ignored (partners add fields); a huge number in one
    is still valid JSON, stored as sent and never parsed into a column."""
    body = envelope(note=10**4000, ratio=1e308, tiny=-(10**300))
    response = client.post("/webhooks/acme", content=body, headers=signed(secret, body))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    record = store.delivery("acme", response.json()["key"])
    assert record is not None and record["payload"] == body
    assert_no_half_delivery(store)


# --- fuzzing -------------------------------------------------------------------

HEADER_NAMES = st.sampled_from(
    [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-signature",
        "stripe-signature",
        "x-hub-signature-256",
        "x-github-delivery",
        "x-github-event",
        "x-shopify-hmac-sha256",
        "x-shopify-webhook-id",
        "x-shopify-topic",
        "x-billing-signature",
        "x-billing-timestamp",
        "idempotency-key",
        "content-type",
        "content-length",
        "transfer-encoding",
        "authorization",
        "connection",
    ]
) | st.binary(min_size=1, max_size=20).map(lambda name: name.decode("latin-1"))
HEADER_BYTES = st.binary(max_size=60) | st.sampled_from(
    [b"", b" ", b"\x00", b"v1,", b"v1,AAAA", b"t=1,v1=00", b"sha256=", b"99999999999"]
)
RAW_QUERY = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
"""Query bytes as sent, unencoded: what h11 lets through (VCHAR; a byte
outside it is a 400 from uvicorn before the app, and Starlette's
``request.url`` cannot decode one that is not UTF-8)."""
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
KEYS = TEXT | st.binary(max_size=30).map(lambda raw: raw.decode("latin-1"))


def _hostile(document: dict[str, Any], draw: Any) -> bytes:
    """``document`` serialised, then made hostile in one way."""
    raw = json.dumps(document).encode()
    how = draw(
        st.sampled_from(
            ["as-is", "repeat", "nul", "big", "deep", "utf8", "splice", "truncate"]
        )
    )
    if how == "repeat":
        return raw.replace(b'"data": {', b'"data": {"order_id": "x", ', 1).replace(
            b"{", b'{"type": "order.paid", ', 1
        )
    if how == "nul":
        return raw.replace(b'_1"', b'_1\\u0000"', 1)
    if how == "big":
        return raw.replace(b": 0", b": " + b"9" * draw(st.integers(19, 5000)), 1)
    if how == "deep":
        depth = draw(st.integers(500, 3000))
        return raw[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    if how == "utf8":
        at = draw(st.integers(0, len(raw)))
        return (
            raw[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"]))
            + raw[at:]
        )
    if how == "splice":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.binary(max_size=8)) + raw[at:]
    if how == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    return raw


@st.composite
def hostile_bodies(draw: Any) -> bytes:
    document = draw(MAPPED)
    if draw(st.booleans()):
        document = {"event_id": draw(TEXT), **document}
    return _hostile(document, draw)


WEBHOOK_BODIES = BODIES | hostile_bodies()


def billing_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    at = str(int(time.time()))
    digest = hmac.new(BILLING_SECRET.encode(), f"{at}.".encode() + body, "sha256")
    return [
        (b"x-billing-signature", b"sha256=" + digest.hexdigest().encode()),
        (b"x-billing-timestamp", at.encode()),
    ]


def test_fuzzed_webhook_headers_and_bodies_never_give_a_500_nor_a_half_delivery(
    client: TestClient, secret: str, store: Store
) -> None:
    """Any header bytes (control characters, invalid UTF-8, NUL, one header
    given twice) and any body (hostile ones above), signed with a valid
    signature (so the mapping and the store see it) or not, to every scheme:
    a documented 4xx or a 2xx, and after each the store holds every delivery
    whole."""
    sources = ["acme"] * 3 + ["billing", "open"] * 2 + ["stripe", "github", "shopify"]
    sources.append("nobody")
    seen: Counter[int] = Counter()

    @examples(
        max_examples=400,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        body=WEBHOOK_BODIES,
        source=st.sampled_from(sources),
        sign=st.sampled_from([True, True, False]),
        key=st.sampled_from(["msg_fixed", None]) | KEYS,
        junk=st.lists(
            st.tuples(
                HEADER_NAMES.map(lambda n: n.lower().encode("latin-1")), HEADER_BYTES
            ),
            max_size=6,
        ),
    )
    def answered(
        body: bytes,
        source: str,
        sign: bool,
        key: str | None,
        junk: list[tuple[bytes, bytes]],
    ) -> None:
        # Starlette reads the first of a repeated header: signing, the junk
        # comes after the signature (a repeated name is then ignored).
        headers: list[tuple[bytes, bytes]] = []
        if sign and source == "acme":
            key = key or f"msg_{uuid.uuid4().hex}"
            signature = signed_headers(secret, key, body)
            # The key is header text: its bytes as Starlette reads them back.
            signature["webhook-id"] = key
            headers += [
                (
                    name.encode(),
                    value.encode(
                        "utf-8" if name != "webhook-id" else "latin-1", errors="replace"
                    ),
                )
                for name, value in signature.items()
            ]
        elif sign and source == "billing":
            headers += billing_headers(body)
        elif sign and source == "open" and key is not None:
            headers.append(
                (b"idempotency-key", key.encode("latin-1", errors="replace"))
            )
        headers += junk
        answer = raw_call(
            client, "POST", f"/webhooks/{source}", headers=headers, body=[body]
        )
        seen[answer.status] += 1
        assert answer.status in (200, 202, 400, 401, 404, 413), answer
        reply = answer.json()
        assert reply.get("error") != "internal_error", reply
        if answer.status >= 400:
            assert set(reply) <= {"error", "message", "path", "mapping"}, reply
        assert_no_half_delivery(store)

    answered()
    assert_no_half_delivery(store)
    print(f"answers by status: {dict(seen)}")
    assert {200, 400, 401, 404} <= set(seen), seen


def test_fuzzed_read_and_audit_parameters_never_give_a_500_nor_change_the_store(
    client: TestClient, partner: Partner, store: Store, database_url: str
) -> None:
    """Arbitrary text (control characters, NUL, any script; percent-encoded)
    or raw unencoded characters in every query and path parameter of every
    read, audit and admin GET, with the token of its role (or none, or a
    wrong one): 200, 400, 401 or 404 (or 307), a filter never matches what it does not
    equal, and nothing is written."""
    seed(client, partner)
    operations = [op for op in read_operations(client) if op[0] == "GET"]
    before, models = fingerprint(store), snapshot(database_url)
    value = TEXT | st.binary(max_size=40).map(lambda raw: raw.decode("latin-1"))

    @examples(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        picked=st.sampled_from(operations),
        data=st.data(),
        token=st.sampled_from(["role", "role", "role", "none", "wrong"]),
        raw_query=st.booleans(),
    )
    def answered(
        picked: tuple[str, str, dict[str, Any]],
        data: st.DataObject,
        token: str,
        raw_query: bool,
    ) -> None:
        method, template, operation = picked
        parameters = operation.get("parameters", [])
        values = {
            p["name"]: data.draw(
                (RAW_QUERY if raw_query and p["in"] == "query" else value)
                | st.just(KNOWN.get(p["name"], "1"))
            )
            for p in parameters
            if p["in"] in ("query", "path") and data.draw(st.booleans())
        }
        path_values = {
            p["name"]: values.get(p["name"], KNOWN[p["name"]])
            for p in parameters
            if p["in"] == "path"
        }
        path = template.format(**path_values)
        query_values = {k: v for k, v in values.items() if k not in path_values}
        if raw_query:
            query = b"&".join(
                k.encode() + b"=" + v.encode() for k, v in query_values.items()
            )
        else:
            query = "&".join(
                f"{k}={quote(v, safe='')}" for k, v in query_values.items()
            ).encode("ascii")
        headers = {
            "role": [
                (b"authorization", f"Bearer {_token(operation['x-role'])}".encode())
            ],
            "none": [],
            "wrong": [(b"authorization", f"Bearer {WRONG_TOKEN}".encode())],
        }[token]
        accept = data.draw(
            st.sampled_from([b"application/json", b"application/x-ndjson"])
        )
        headers.append((b"accept", accept))
        answer = raw_call(client, method, path, headers=headers, query=query)
        label = f"{method} {path!r} ?{query!r}"
        # 307: an empty last path parameter leaves a trailing "/" to drop.
        assert answer.status in (200, 307, 400, 401, 404), (label, answer)
        if token != "role":
            assert answer.status in (307, 401, 404), label  # 404: no such route
            return
        if answer.status == 200 and not raw_query:
            body = (
                [json.loads(line) for line in answer.body.splitlines()]
                if answer.headers["content-type"] == "application/x-ndjson"
                else answer.json()
            )
            items = items_of(body) or []
            for name, given_value in query_values.items():
                if name in ("customer_id", "source", "status", "outcome"):
                    assert all(item.get(name) == given_value for item in items), label
        assert fingerprint(store) == before, label

    answered()
    assert snapshot(database_url) == models


def _token(role: str) -> str:
    return auth(role)["authorization"].removeprefix("Bearer ")
