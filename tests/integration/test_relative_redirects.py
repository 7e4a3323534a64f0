"""The 307 that drops a trailing ``/`` (or adds the one a route needs) never
reflects the ``Host`` header (issue 13): its ``Location`` is a path, with the
query string kept, whatever host the request names. Starlette's own made an
absolute URL from ``Host``: an open redirect, and a cache could keep it."""

from __future__ import annotations

import pytest
from starlette.routing import Route, Router
from starlette.testclient import TestClient

from tests.partner import Partner, auth
from tests.store import Store
from web.slashes import RelativeSlashRedirect

HOSTILE_HOSTS = [
    "evil.example",
    "evil.example:8443",
    "127.0.0.1.evil.example",
    "[::1]:80",
    "user@evil.example",
]
REDIRECTS = [
    ("GET", "/views/orders/", "/views/orders"),
    ("GET", "/views/orders/?limit=5&status=paid", "/views/orders?limit=5&status=paid"),
    ("GET", "/views/orders/ord_1/", "/views/orders/ord_1"),
    ("GET", "/audit/deliveries/acme", "/audit/deliveries/acme/"),
    ("GET", "/healthz/", "/healthz"),
    (
        "GET",
        "/views/orders/?after=a%2Fb%20c",
        "/views/orders?after=a%2Fb%20c",
    ),
]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_the_trailing_slash_redirect_is_relative_whatever_the_host_header(
    client: TestClient, host: str
) -> None:
    for method, url, location in REDIRECTS:
        response = client.request(
            method,
            url,
            headers={**auth("auditor"), "host": host, "x-forwarded-host": host},
            follow_redirects=False,
        )
        assert response.status_code == 307, (url, response.text)
        assert response.headers["location"] == location, url
        assert response.content == b""
        assert "evil" not in str(response.headers).lower()


def test_a_webhook_with_a_trailing_slash_is_redirected_relative_and_not_stored(
    client: TestClient, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_slash")
    response = client.post(
        "/webhooks/acme/?from=partner",
        content=request.body,
        headers={**request.headers, "host": "evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 307
    assert response.headers["location"] == "/webhooks/acme?from=partner"
    assert store.count("deliveries") == 0
    followed = client.post(
        response.headers["location"], content=request.body, headers=request.headers
    )
    assert followed.json()["outcome"] == "applied"


@pytest.mark.parametrize("url", ["/nowhere/", "/nowhere", "/", "/views/"])
def test_a_path_no_route_takes_in_any_form_is_a_404_not_a_redirect(
    client: TestClient, url: str
) -> None:
    response = client.get(url, headers={"host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 404, response.headers
    assert response.json()["error"] == "not_found"
    assert "location" not in response.headers


def test_a_location_that_a_browser_would_read_as_another_host_is_never_sent() -> None:
    """``//evil.example`` is a path to a server and a host to a browser: with
    a route that takes any path, its redirect is refused (the 404)."""
    router = Router([Route("/{rest:path}", lambda request: None)])
    redirect = RelativeSlashRedirect(router)
    scope = {"type": "http", "method": "GET", "path": "//evil.example/"}
    assert redirect.location(scope) is None
    scope = {**scope, "path": "/x/", "query_string": b"a=1 2&b=\xe9"}
    assert redirect.location(scope) == "/x?a=1%202&b=%E9"
