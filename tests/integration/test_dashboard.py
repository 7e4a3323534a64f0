"""``GET /dashboard`` and its files, without a browser: the page is served
open, as HTML that loads only files the app serves itself, each with its
media type; anything else under ``/static`` is a 404. (What the page draws
is checked in a real browser: tests/e2e/browser/test_dashboard_browser.py.)"""

from __future__ import annotations

import dataclasses
import re

import msgspec
from starlette.testclient import TestClient

from infrastructure.settings import Settings
from web.app import create_app
from web.dashboard import ASSETS
from web.static_pages import STATIC

MEDIA_TYPES = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
}


def test_the_dashboard_is_an_open_html_page_that_loads_only_served_files(
    client: TestClient,
) -> None:
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert "<canvas" not in page, "the charts are drawn by the script"
    loaded = [
        url
        for url in re.findall(r'(?:src|href)="([^"]+)"', page)
        if not url.startswith("data:")
    ]
    for url in loaded:
        assert url.startswith("static/"), f"{url}: not a file of the app"
        assert client.get(f"/{url}").status_code == 200, url
    assert {url.removeprefix("static/") for url in loaded} == set(MEDIA_TYPES)


def test_each_file_is_served_with_its_media_type(client: TestClient) -> None:
    assert set(ASSETS) == set(MEDIA_TYPES)
    for name, media_type in MEDIA_TYPES.items():
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (STATIC / ASSETS[name][0]).read_bytes()
    uplot = client.get("/static/uPlot.iife.min.js").text
    assert uplot.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert (STATIC / "uplot" / "LICENSE").read_text().startswith("The MIT License")


def test_no_other_file_is_served(client: TestClient) -> None:
    for name in ("dashboard.html", "LICENSE", "README.md", "..", "uplot", "x.js"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 404, name
        assert response.json()["error"] == "not_found"
    assert client.get("/static/uplot/LICENSE").status_code == 404
    assert client.get("/static/..%2F..%2Fapp.py").status_code == 404


def test_the_page_stays_open_when_metrics_need_a_token(settings: Settings) -> None:
    app = create_app(
        dataclasses.replace(
            settings,
            server=msgspec.structs.replace(settings.server, metrics_require_token=True),
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/dashboard").status_code == 200
        assert client.get("/static/dashboard.js").status_code == 200
