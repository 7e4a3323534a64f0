"""``/console``, ``/docs`` and ``/auth/me`` without a browser: both pages are
open HTML that loads only the app's own files, the vendored Swagger UI is
served as packed, ``/auth/me`` names each token's role and nothing without
one, and the console's script has no way to put text in the page as HTML.
(What the console shows is checked in a real browser:
tests/e2e/browser/test_console_browser.py.)"""

from __future__ import annotations

import hashlib
import re

import pytest
from starlette.testclient import TestClient

from tests.partner import TOKENS, WRONG_TOKEN, auth
from web.console import ASSETS
from web.static_pages import STATIC

PAGES = {
    "/console": {"console.css", "console.js"},
    "/docs": {"swagger-ui.css", "swagger-ui-bundle.js", "docs.js"},
}


@pytest.mark.parametrize("path", sorted(PAGES))
def test_each_page_is_open_html_that_loads_only_the_apps_own_files(
    client: TestClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "connect-src 'self'" in policy
    loaded = {
        url
        for url in re.findall(r'(?:src|href)="([^"]+)"', response.text)
        if not url.startswith(("data:", "#"))
    }
    assert {url.removeprefix("static/") for url in loaded} == PAGES[path]
    for url in loaded:
        assert url.startswith("static/"), url
        assert client.get(f"/{url}").status_code == 200, url


def test_swagger_ui_is_served_as_packed_with_its_licence(client: TestClient) -> None:
    readme = (STATIC / "swagger-ui" / "README.md").read_text()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = client.get(f"/static/{name}")
        assert served.status_code == 200
        assert served.content == (STATIC / ASSETS[name][0]).read_bytes()
        assert f"{hashlib.sha256(served.content).hexdigest()}  {name}" in readme
    licence = (STATIC / "swagger-ui" / "LICENSE").read_text()
    assert "Apache License" in licence


@pytest.mark.parametrize("role", sorted(TOKENS))
def test_auth_me_names_the_tokens_configured_name_and_role(
    client: TestClient, role: str
) -> None:
    response = client.get("/auth/me", headers=auth(role))
    assert response.status_code == 200
    assert response.json() == {"name": f"test-{role}", "role": role}
    assert TOKENS[role] not in response.text


def test_auth_me_answers_nothing_without_a_valid_token(client: TestClient) -> None:
    assert client.get("/auth/me").status_code == 401
    wrong = client.get("/auth/me", headers={"authorization": f"Bearer {WRONG_TOKEN}"})
    assert wrong.status_code == 401
    assert "name" not in wrong.json()


def test_the_console_script_never_parses_text_as_html() -> None:
    script = (STATIC / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script, sink
    assert "eval(" not in script
    assert "new Function" not in script


def test_only_the_apps_own_pages_may_frame_the_dashboard(client: TestClient) -> None:
    def policy(path: str) -> str:
        return str(client.get(path).headers["content-security-policy"])

    assert "frame-ancestors 'self'" in policy("/dashboard")
    assert "frame-src 'self'" in policy("/console")
    assert "frame-ancestors 'none'" in policy("/console")
    assert "frame-ancestors 'none'" in policy("/docs")
    assert "frame-src" not in policy("/dashboard") + policy("/docs")
