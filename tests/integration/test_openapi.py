"""``GET /openapi.json`` (issue 5, item 5) kept true, on both backends: the
document is valid OpenAPI 3.1; it describes every route of the app with its
methods and role; Schemathesis, run through the real ASGI app on a store
holding a few real deliveries, finds no 500 and no answer the document does
not describe; signed and unsigned webhook deliveries of any shape are
answered as documented; and every guarded operation's 401 is the documented
one."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta, timezone
from typing import Any

import jsonschema
import msgspec
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route
from starlette.testclient import TestClient

from infrastructure.access import Role
from tests.partner import WRONG_TOKEN, Partner, auth, post, send
from tests.read_models import caught_up
from tests.webhook_bodies import BODIES, HEADER_VALUES, signed_headers
from web.access import required_role
from web.bodies import audit, read_models
from web.bodies.answers import Answer

Document = dict[str, Any]
ASGIApp = Callable[..., Awaitable[None]]

KNOWN = {
    "order_id": "ord_1",
    "customer_id": "cus_1",
    "source": "acme",
    "key": "msg_seed_created",
    "type": "order",
    "id": "ord_1",
    "name": "revenue",
}
"""Path parameters naming what ``seed`` stored, so that Schemathesis also
sees the bodies of real objects, not only 404s."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]
CONFIG = {
    # The store is up and answering: a 503 here is as wrong as a 500.
    "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx"]}},
}
EXAMPLES = 40
"""Per operation and generation mode (positive, negative)."""

ZONES = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
EDGES = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
"""Valid RFC 3339 times outside Python's range once converted to UTC."""
MOMENTS = st.sampled_from(EDGES) | st.datetimes(timezones=ZONES).map(
    lambda moment: moment.isoformat()
)
"""RFC 3339 times over the whole calendar, with any offset, and its edges
(Schemathesis's own keep to UTC)."""
schemathesis.openapi.format("date-time", MOMENTS)


def document(client: TestClient) -> Document:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: Document = response.json()
    return body


def operations(doc: Document) -> Iterator[tuple[str, str, Document]]:
    for path, item in doc["paths"].items():
        for method, described in item.items():
            yield method.upper(), path, described


READS = {
    "/views/orders": ("reader", read_models.OrdersPage),
    "/views/orders/ord_1": ("reader", read_models.Order),
    "/views/customers/cus_1": ("reader", read_models.Customer),
    "/views/customers/cus_2": ("reader", read_models.Customer),
    "/views/revenue": ("reader", read_models.RevenueList),
    "/views/sources": ("reader", read_models.SourceStatsList),
    "/audit/deliveries": ("auditor", audit.DeliveriesPage),
    f"/audit/deliveries/acme/{KNOWN['key']}": ("auditor", audit.AuditDeliveryDetail),
    "/audit/aggregates/order/ord_1/events": ("auditor", audit.AggregateEvents),
    "/audit/aggregates/order/ord_2": ("auditor", audit.AggregateState),
    "/audit/aggregates/order/ord_1?version=1": ("auditor", audit.AggregateState),
    "/audit/events": ("auditor", audit.EventLogPage),
}
"""The reads whose endpoints send what they read as they read it (not a
Struct of ``web.bodies``), and the Struct that describes it."""


def seed(client: TestClient, partner: Partner) -> None:
    """A little of everything: applied, duplicate, parked, rejected, ignored,
    a customer with an address object, and one deleted; each answer is an
    ``Answer``."""
    created = partner.order_created("ord_1", key=KNOWN["key"])
    for request in (
        created,
        created,
        partner.order_created("ord_3", customer_id="cus_2", currency="USD"),
        partner.event("order.paid", order_id="ord_1", amount_cents=5000),
        partner.event("order.paid", order_id="ord_2", amount_cents=100),
        partner.event(
            "order.shipped", order_id="ord_1", carrier="DHL", tracking_number="T1"
        ),
        partner.event("order.cancelled", order_id="ord_1"),
        partner.event("invoice.sent", invoice_id="inv_1"),
        partner.event(
            "customer.upserted",
            customer_id="cus_1",
            email="ada@example.com",
            address={"city": "London"},
        ),
        partner.event("customer.upserted", customer_id="cus_2", name="Bob"),
        partner.event("customer.deleted", customer_id="cus_2"),
    ):
        status, body, _ = post(client, request)
        assert status in (200, 202)
        msgspec.convert(body, Answer)
    caught_up(client)


def without_lifespan(app: ASGIApp) -> ASGIApp:
    """``app`` for Schemathesis: every request goes to the real app, whose
    lifespan the test client runs (a lifespan runs once per app)."""

    async def forward(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("the test client runs the lifespan")
        await app(scope, receive, send)

    return forward


def wait_for_rebuilds(client: TestClient, timeout: float = 30.0) -> None:
    """The rebuilds Schemathesis started, finished before the store goes."""
    rebuilds = getattr(client.app.state, "rebuilds", None)  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while rebuilds is not None and any(
        job.state == "running" for job in list(rebuilds.jobs.values())
    ):
        assert time.monotonic() < deadline, "rebuilds still running"
        time.sleep(0.05)


def validator(doc: Document, schema: Document) -> jsonschema.protocols.Validator:
    """A JSON Schema validator for ``schema``, whose ``$ref`` resolve in
    ``doc``'s components."""
    return jsonschema.Draft202012Validator(
        {**schema, "components": doc["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def assert_documented(doc: Document, method: str, path: str, response: Any) -> None:
    """``response`` has a status, content type and body ``doc`` gives for
    ``method path``."""
    described = doc["paths"][path][method.lower()]["responses"]
    status = str(response.status_code)
    assert status in described, f"{method} {path}: undocumented {status}"
    content = described[status]["content"]
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in content, f"{method} {path} {status}: {media_type}"
    errors = list(
        validator(doc, content[media_type]["schema"]).iter_errors(response.json())
    )
    assert not errors, f"{method} {path} {status}: {errors[0].message}"
    for name in described[status].get("headers", {}):
        if name != "Idempotent-Replayed":
            assert name in response.headers, f"{method} {path} {status}: {name}"


# --- the document -----------------------------------------------------------


def test_the_document_is_served_without_a_token_and_is_valid_openapi_3_1(
    client: TestClient,
) -> None:
    doc = document(client)
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    bearer = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")


def test_every_route_is_documented_with_its_methods_and_every_path_is_a_route(
    client: TestClient,
) -> None:
    routed: dict[str, set[str]] = {}
    for route in client.app.routes:  # type: ignore[attr-defined]
        assert isinstance(route, Route), f"not a plain route: {route!r}"
        # ``{key:path}`` is ``{key}`` in OpenAPI; HEAD comes with every GET.
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        routed.setdefault(path, set()).update(set(route.methods or ()) - {"HEAD"})
    documented: dict[str, set[str]] = {}
    for method, path, _ in operations(document(client)):
        documented.setdefault(path, set()).add(method)
    assert documented == routed


def test_each_operation_states_the_role_its_endpoint_enforces(
    client: TestClient,
) -> None:
    doc = document(client)
    for route in client.app.routes:  # type: ignore[attr-defined]
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        role = required_role(route.endpoint)
        for method in set(route.methods or ()) - {"HEAD"}:
            described = doc["paths"][path][method.lower()]
            if role is None:
                assert described["security"] == [], f"{method} {path}"
                assert "Open: no token." in described["description"]
                assert "401" not in described["responses"] or path.startswith(
                    "/webhooks/"
                )
                continue
            assert described["security"] == [{"bearerAuth": []}], f"{method} {path}"
            assert described["x-role"] == role.label, f"{method} {path}"
            assert f"Role `{role.label}` or higher" in described["description"]
            assert {"401", "403"} <= set(described["responses"]), f"{method} {path}"


def test_every_query_and_path_parameter_has_a_typed_schema(
    client: TestClient,
) -> None:
    for method, path, described in operations(document(client)):
        names = set(re.findall(r"\{(\w+)\}", path))
        parameters = described.get("parameters", [])
        in_path = {p["name"] for p in parameters if p["in"] == "path"}
        assert in_path == names, f"{method} {path}"
        for parameter in parameters:
            schema = parameter["schema"]
            assert schema.get("type") in ("string", "integer"), parameter
            assert parameter.get("description"), parameter
            if schema["type"] == "integer":
                assert {"minimum", "maximum"} <= set(schema), parameter


# --- the app answers as documented -------------------------------------------


def test_the_reads_that_send_dicts_send_the_bodies_the_document_describes(
    client: TestClient, partner: Partner
) -> None:
    """Each such read of what ``seed`` stored decodes as its body Struct and
    validates against the document's schema, whatever Schemathesis draws."""
    seed(client, partner)
    doc = document(client)
    for url, (role, body) in READS.items():
        response = client.get(url, headers=auth(role))
        assert response.status_code == 200, url
        msgspec.json.decode(response.content, type=body)
        path = next(
            path
            for path in doc["paths"]
            if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", path), url.split("?")[0])
        )
        assert_documented(doc, "GET", path, response)


def real_cursors(client: TestClient) -> dict[str, str]:
    """A ``next_cursor`` this server gave, for each path that takes one."""
    pages = {
        "/views/orders": ("/views/orders", "reader"),
        "/audit/deliveries": ("/audit/deliveries", "auditor"),
        "/audit/aggregates/{type}/{id}/events": (
            "/audit/aggregates/order/ord_1/events",
            "auditor",
        ),
    }
    cursors = {}
    for path, (url, role) in pages.items():
        response = client.get(url, params={"limit": 1}, headers=auth(role))
        cursors[path] = response.json()["next_cursor"]
        assert cursors[path], url
    return cursors


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    client: TestClient, partner: Partner
) -> None:
    seed(client, partner)
    cursors = real_cursors(client)
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json",
        without_lifespan(client.app),
        config=schemathesis.Config.from_dict(CONFIG),
    )
    failures: list[str] = []
    try:
        # Last, the rebuilds it starts (a swap may make a view answer 503).
        every = sorted(
            (result.ok() for result in schema.get_all_operations()),
            key=lambda operation: (
                operation.label.endswith("/rebuild")
                and operation.method.upper() == "POST"
            ),
        )
        for operation in every:
            failure = run_operation(operation, cursors.get(operation.path))
            if failure:
                failures.append(f"{operation.label}: {failure}")
    finally:
        wait_for_rebuilds(client)
    assert not failures, "\n\n".join(failures)


def run_operation(operation: schemathesis.APIOperation, cursor: str | None) -> str:
    """Schemathesis on one operation, with the token of its documented role,
    positive and negative, with generated and with seeded path parameters;
    what it found, or ``""``."""
    role = operation.definition.raw.get("x-role")
    headers = auth(role) if role else {}
    known = {p.name: KNOWN[p.name] for p in operation.path_parameters}

    def as_described(case: schemathesis.Case) -> schemathesis.Case:
        """What the descriptions say and a JSON Schema cannot: a cursor is
        one the server gave; ``version`` and ``as_of`` are not both given."""
        if "cursor" in case.query and cursor is not None:
            case.query["cursor"] = cursor
        if "version" in case.query:
            case.query.pop("as_of", None)
        return case

    strategies = [
        operation.as_strategy(mode, headers=headers, path_parameters=fixed)
        for mode in schemathesis.GenerationMode
        for fixed in ({}, known)
    ]
    positive = schemathesis.GenerationMode.POSITIVE

    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def answers_as_documented(case: schemathesis.Case) -> None:
        if case.meta is not None and case.meta.generation.mode is positive:
            case = as_described(case)
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        answers_as_documented()
    except (Exception, BaseExceptionGroup) as failure:
        return f"{type(failure).__name__}: {failure}"
    return ""


def test_webhook_deliveries_of_any_shape_signed_or_not_are_answered_as_documented(
    client: TestClient, partner: Partner
) -> None:
    """Schemathesis cannot sign; this posts arbitrary bodies, signed (then
    the mapping decides) or with arbitrary signature headers, to a known and
    an unknown source."""
    doc = document(client)

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        body=BODIES,
        signed=st.booleans(),
        key=st.sampled_from([None, "msg_fixed"]) | HEADER_VALUES,
        junk=st.dictionaries(
            st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]),
            HEADER_VALUES,
        ),
        source=st.sampled_from(["acme", "acme", "acme", "nobody"]),
    )
    def answered_as_documented(
        body: bytes, signed: bool, key: str | None, junk: dict[str, str], source: str
    ) -> None:
        if signed:
            key = key or f"msg_{uuid.uuid4().hex}"
            headers = signed_headers(partner.secret, key, body)
            response = client.post(f"/webhooks/{source}", content=body, headers=headers)
        else:
            response = client.post(f"/webhooks/{source}", content=body, headers=junk)
        assert_documented(doc, "POST", "/webhooks/{source}", response)
        assert response.json().get("error") != "internal_error"
        if response.json().get("outcome") == "duplicate":
            assert response.headers["idempotent-replayed"] == "true"

    answered_as_documented()


def test_a_body_over_the_limit_is_a_documented_413(
    client: TestClient, partner: Partner
) -> None:
    big = partner.sign(b"[" + b"0," * 40_000 + b"0]")  # over the 64 KiB set
    response = send(client, big)
    assert response.status_code == 413
    assert_documented(document(client), "POST", "/webhooks/{source}", response)


def test_a_payload_the_mapping_cannot_read_is_a_documented_400_naming_the_mapping(
    client: TestClient, partner: Partner
) -> None:
    response = send(client, partner.order_created("ord_bad", total_cents="4200"))
    assert response.status_code == 400
    assert response.json()["mapping"] == "standard"
    doc = document(client)
    assert_documented(doc, "POST", "/webhooks/{source}", response)
    error = doc["components"]["schemas"]["Error"]
    assert "mapping" in error["properties"]
    assert error.get("additionalProperties") is False


def test_a_request_over_the_header_limits_is_a_documented_431(
    client: TestClient, partner: Partner
) -> None:
    request = partner.order_created("ord_headers")
    many = {f"x-extra-{n}": "v" for n in range(200)}
    response = client.post(
        "/webhooks/acme", content=request.body, headers={**request.headers, **many}
    )
    assert response.status_code == 431
    assert_documented(document(client), "POST", "/webhooks/{source}", response)


def test_each_guarded_operation_answers_the_documented_401_and_403(
    client: TestClient,
) -> None:
    doc = document(client)
    guarded = [(m, p, d) for m, p, d in operations(doc) if d["security"]]
    assert guarded
    # Without a token or with a wrong one: 401; with the role just below: 403.
    for method, path, described in guarded:
        url = path.format(**KNOWN)
        for headers in ({}, {"authorization": f"Bearer {WRONG_TOKEN}"}):
            response = client.request(method, url, headers=headers)
            assert response.status_code == 401, f"{method} {url}"
            assert response.headers["www-authenticate"] == "Bearer"
            assert_documented(doc, method, path, response)
        role = Role.parse(described["x-role"])
        if role > Role.READER:
            response = client.request(method, url, headers=auth(Role(role - 1)))
            assert response.status_code == 403, f"{method} {url}"
            assert_documented(doc, method, path, response)


def test_the_ndjson_log_is_one_documented_event_per_line(
    client: TestClient, partner: Partner
) -> None:
    seed(client, partner)
    doc = document(client)
    described = doc["paths"]["/audit/events"]["get"]["responses"]["200"]
    event = validator(doc, described["content"]["application/x-ndjson"]["schema"])
    response = client.get(
        "/audit/events", headers={**auth("auditor"), "accept": "application/x-ndjson"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.text.splitlines()
    assert len(lines) > 5
    for line in lines:
        event.validate(json.loads(line))


def test_a_nul_in_any_path_or_query_parameter_is_a_documented_4xx_not_a_503(
    client: TestClient,
) -> None:
    """PostgreSQL text cannot hold NUL: such input must be refused or not
    found, not reach the store (a 503 would be retried for ever)."""
    doc = document(client)
    for method, path, described in operations(doc):
        if method != "GET" or not described["security"]:
            continue
        headers = auth(described["x-role"])
        for parameter in described.get("parameters", []):
            name, where = parameter["name"], parameter["in"]
            if (
                parameter["schema"].get("type") != "string"
                or "enum" in parameter["schema"]
            ):
                continue
            if where == "path":
                url = path.format(**{**KNOWN, name: "a%00b"})
                response = client.get(url, headers=headers)
            else:
                url = path.format(**KNOWN)
                response = client.get(url, params={name: "a\x00b"}, headers=headers)
            assert response.status_code in (400, 404), f"{url} {name}"
            assert_documented(doc, method, path, response)
