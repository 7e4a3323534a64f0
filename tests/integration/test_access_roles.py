"""Access roles through the real app (specification §8), on both backends: every
``/views`` and ``/admin`` endpoint tried with no token, a wrong one, and each
role's; the open endpoints; and no token in any log line."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from infrastructure.access import Role
from tests.partner import TOKENS, WRONG_TOKEN, Partner, auth, post
from tests.read_models import caught_up
from web.access import required_role

PREFIX_ROLES = {
    "/views/": Role.READER,
    "/auth/": Role.READER,
    "/audit/": Role.AUDITOR,
    "/admin/": Role.ADMIN,
}
OPEN = {
    "/healthz",
    "/readyz",
    "/webhooks/{source}",
    "/openapi.json",
    "/metrics",
    "/dashboard",
    "/console",
    "/docs",
    "/static/{name}",
}
"""The only routes served without a token (webhooks carry signatures; the
OpenAPI document describes the API and holds no data; the pages (dashboard,
console, API reference) and their files hold none either: their data comes
from the API, asked with the visitor's token). A new open route must be
added here on purpose."""

SAMPLES = {
    ("GET", "/views/orders"): "/views/orders?status=created",
    ("GET", "/views/orders/{order_id}"): "/views/orders/ord_1",
    ("GET", "/views/customers/{customer_id}"): "/views/customers/cus_1",
    ("GET", "/views/revenue"): "/views/revenue",
    ("GET", "/views/sources"): "/views/sources",
    ("GET", "/auth/me"): "/auth/me",
    ("GET", "/admin/projections"): "/admin/projections",
    ("GET", "/admin/projections/{name}/rebuild"): "/admin/projections/revenue/rebuild",
    ("POST", "/admin/replay"): "/admin/replay?source=acme&dry_run=1",
    ("POST", "/admin/parked/{source}/{key:path}/discard"): (
        "/admin/parked/acme/msg_parked_1/discard?reason=test"
    ),
    # ord_park does not exist: the admin gets past the guard to a 409.
    ("POST", "/admin/parked/{source}/{key:path}/release"): (
        "/admin/parked/acme/msg_parked_2/release?reason=test"
    ),
    ("POST", "/admin/customers/{customer_id}/erase"): (
        "/admin/customers/cus_erased/erase?reason=test"
    ),
    # Last: it starts a (dry-run) rebuild, which the test waits for.
    ("POST", "/admin/projections/{name}/rebuild"): (
        "/admin/projections/revenue/rebuild?dry_run=1"
    ),
}
"""A request that succeeds (2xx) for each /views and /admin endpoint."""

CALLERS: dict[str, dict[str, str]] = {
    "none": {},
    "wrong": {"authorization": f"Bearer {WRONG_TOKEN}"},
    **{label: auth(label) for label in TOKENS},
}


def routes(client: TestClient) -> list[tuple[str, str, Any]]:
    """(method, path, endpoint) of every route of the app (HEAD left out)."""
    found = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        assert isinstance(route, Route), f"not a plain route: {route!r}"
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            found.append((method, route.path, route.endpoint))
    return found


def prefix_role(path: str) -> Role | None:
    return next((r for p, r in PREFIX_ROLES.items() if path.startswith(p)), None)


def assert_refused(response: Any, status: int, required: Role) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    if status == 401:
        assert body["error"] == "unauthorized" and body["message"]
        assert set(body) == {"error", "message"}
        assert response.headers["www-authenticate"] == "Bearer"
    else:
        assert body == {
            "error": "forbidden",
            "message": f"role {required.label} required",
        }
        assert "www-authenticate" not in response.headers


@pytest.fixture
def populated(client: TestClient, partner: Partner) -> TestClient:
    """An order ord_1 and a customer cus_1, projected; two payments parked
    on ord_park."""
    post(client, partner.order_created("ord_1", customer_id="cus_1"))
    post(client, partner.event("customer.upserted", customer_id="cus_1", name="Ada"))
    for key in ("msg_parked_1", "msg_parked_2"):
        paid = partner.event("order.paid", key, order_id="ord_park", amount_cents=1)
        assert post(client, paid)[1]["outcome"] == "parked"
    caught_up(client)
    return client


def test_every_route_is_open_by_design_or_guarded_by_its_prefixs_role(
    client: TestClient,
) -> None:
    for method, path, endpoint in routes(client):
        if path in OPEN:
            assert required_role(endpoint) is None, path
            continue
        role = prefix_role(path)
        assert role is not None, f"{method} {path}: neither open nor guarded"
        assert required_role(endpoint) is role, f"{method} {path}"
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        assert_refused(client.request(method, concrete), 401, role)
        if role > Role.READER:
            below = auth(Role(role - 1))
            assert_refused(client.request(method, concrete, headers=below), 403, role)


def test_each_views_and_admin_endpoint_answers_each_caller_as_its_role_says(
    populated: TestClient,
) -> None:
    client = populated
    guarded = {
        (method, path)
        for method, path, _ in routes(client)
        if prefix_role(path) in (Role.READER, Role.ADMIN)
    }
    assert guarded == set(SAMPLES), "add a sample request for each new endpoint"
    for (method, template), url in SAMPLES.items():
        required = prefix_role(template)
        assert required is not None
        for caller, headers in CALLERS.items():
            response = client.request(method, url, headers=headers)
            where = f"{method} {url} as {caller}"
            if caller in ("none", "wrong"):
                assert_refused(response, 401, required)
            elif Role.parse(caller) < required:
                assert_refused(response, 403, required)
            elif "release" in template:
                assert response.json()["error"] == "not_yet_created", where
            else:
                assert 200 <= response.status_code < 300, (where, response.text)
    deadline = time.monotonic() + 20
    status_url = SAMPLES[("GET", "/admin/projections/{name}/rebuild")]
    while client.get(status_url, headers=auth("admin")).json()["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        f"Basic {TOKENS['admin']}",
        f"Token {TOKENS['admin']}",
        f"Bearer {TOKENS['admin']} extra",
        f"Bearer {TOKENS['admin']}x",
        f"Bearer {TOKENS['admin'][:-1]}",
        f"Bearer {TOKENS['admin'].upper()}",
        "Bearer " + "a" * 10_000,
    ],
)
def test_a_missing_malformed_or_unknown_bearer_token_is_401(
    client: TestClient, header: str
) -> None:
    response = client.get("/admin/projections", headers={"authorization": header})
    assert_refused(response, 401, Role.ADMIN)
    assert TOKENS["admin"] not in response.text


def test_the_bearer_scheme_is_case_insensitive_and_spaces_around_are_ignored(
    client: TestClient,
) -> None:
    for header in (f"bearer {TOKENS['reader']}", f"BEARER   {TOKENS['reader']}  "):
        response = client.get("/views/revenue", headers={"authorization": header})
        assert response.status_code == 200, response.text


def test_health_and_webhooks_need_no_token(
    client: TestClient, partner: Partner
) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    status, body, _ = post(client, partner.order_created("ord_open"))
    assert (status, body["outcome"]) == (200, "applied")


def test_a_token_never_appears_in_the_logs_of_requests_made_with_it(
    client: TestClient, partner: Partner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    presented = [*TOKENS.values(), WRONG_TOKEN, TOKENS["admin"] + "x"]
    answers = []
    for token in presented:
        for scheme in ("Bearer", "Basic"):
            headers = {"authorization": f"{scheme} {token}"}
            for path in ("/views/revenue", "/admin/projections", "/healthz"):
                answers.append(client.get(path, headers=headers))
            request = partner.order_created("ord_logged")
            request.headers.update(headers)
            answers.append(
                client.post(
                    "/webhooks/acme", content=request.body, headers=request.headers
                )
            )
            answers.append(client.post("/webhooks/nope", headers=headers))
    statuses = {response.status_code for response in answers}
    assert {200, 401, 403}.issubset(statuses)
    assert any("status=401" in r.getMessage() for r in caplog.records)
    assert any("status=403" in r.getMessage() for r in caplog.records)
    logged = caplog.text + "".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records
    )
    for token in presented:
        assert token not in logged
        assert all(token not in response.text for response in answers)
