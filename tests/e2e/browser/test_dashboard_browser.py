"""``/dashboard`` in a real browser: headless Chromium (Debian's
``/usr/bin/chromium``, driven by Playwright for Python with that executable;
Playwright's own browser download is never used) loads the page from a
running ``idemsync serve`` that has taken a known mix of deliveries, and the
page's numbers (``window.dashboard``, what its tables and charts show) are
exactly those; more deliveries move them without a reload; a screenshot is
written under the test's tmp dir.

Without Chromium (or Playwright) these tests skip with one line saying why,
except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from infrastructure.access import token_hash
from tests.e2e.browser.chromium import PROBLEM, SKIP
from tests.e2e.conftest import Server, ServerFactory
from tests.partner import TOKENS, Partner, Request, post

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e]

log = logging.getLogger(__name__)

PROJECTIONS = {"orders", "customers", "revenue", "source_stats"}
OUTCOMES = ("applied", "parked", "rejected", "stale", "ignored", "duplicate")
WAIT_MS = 20_000
"""Longest wait for the page, in ms (it scrapes every 2 s)."""


if SKIP:
    pytest.skip(str(PROBLEM), allow_module_level=True)  # one line for the module


def expect(client: httpx.Client, outcome: str, *requests: Request) -> None:
    for request in requests:
        status, body, _ = post(client, request)
        assert body["outcome"] == outcome, (status, body)


def latest(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate("window.dashboard.latest()")
    return found


def wait_until(page: Page, condition: str, argument: Any = None) -> None:
    """Until ``condition`` (a JS function of ``latest()`` and ``argument``)
    holds in the page, polled as it scrapes."""
    page.wait_for_function(
        f"([argument]) => window.dashboard && ({condition})"
        "(window.dashboard.latest(), argument)",
        arg=[argument],
        timeout=WAIT_MS,
    )


def scraped_positions(base_url: str) -> dict[str, float]:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return {
        sample.labels["projection"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "idemsync_projection_position"
    }


ALL_CAUGHT_UP = """(view, names) => {
    const found = Object.keys(view.projections).sort();
    return JSON.stringify(found) === JSON.stringify(names)
        && found.every((name) => view.projections[name].lag === 0);
}"""


def test_the_page_holds_the_exact_numbers_and_follows_new_traffic(
    serve: ServerFactory,
    sqlite_url: str,
    partner: Partner,
    page: Page,
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    server = serve(sqlite_url)
    created = [partner.order_created(f"ord_{n}") for n in range(1, 6)]
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        expect(client, "applied", *created)
        expect(
            client,
            "applied",
            partner.event(
                "order.shipped", order_id="ord_1", carrier="DHL", tracking_number="T1"
            ),
        )
        expect(
            client,
            "rejected",
            partner.event("order.cancelled", order_id="ord_1", reason="too late"),
        )
        expect(
            client,
            "parked",
            *(
                partner.event("order.paid", order_id=f"ord_{n}", amount_cents=100)
                for n in (8, 9)
            ),
        )
        expect(client, "duplicate", *created[:3])

        page.goto(f"{server.base_url}/dashboard")
        page.evaluate("window.sameDocument = true")
        wait_until(page, "(view) => view.scrapes >= 2")
        wait_until(page, ALL_CAUGHT_UP, sorted(PROJECTIONS))
        view = latest(page)
        assert view["error"] is None
        assert set(view["sources"]) == {"acme"}
        acme = view["sources"]["acme"]
        assert acme["totals"] == {
            "applied": 6,
            "parked": 2,
            "rejected": 1,
            "stale": 0,
            "ignored": 0,
            "duplicate": 3,
        }
        assert acme["deliveries"] == 12
        assert acme["duplicateRatio"] == 3 / 12
        assert acme["retries"] == 3
        assert 0 < acme["retryDelayMean"] < 60
        assert acme["refused"] == 0
        # ord_8's and ord_9's payments wait for orders that never come.
        assert acme["parked"] == 2
        assert 0 < acme["parkedOldestSeconds"] < 600
        # Nothing was sent since the page opened: every rate is zero.
        assert acme["ratesPerSecond"] == dict.fromkeys(OUTCOMES, 0)
        assert acme["duplicateRatioLastMinute"] is None
        positions = scraped_positions(server.base_url)
        assert set(positions) == PROJECTIONS
        for name, projection in view["projections"].items():
            assert projection == {
                "lag": 0,
                "position": positions[name],
                "failed": False,
            }, name
            assert projection["position"] > 0
        assert page.locator("figure.chart").count() == 4
        assert page.locator("canvas").count() == 4
        scrapes_before = view["scrapes"]

        # More traffic: the page follows without a reload.
        more = [partner.order_created(f"ord_{n}") for n in (6, 7)]
        expect(client, "applied", *more)
        expect(client, "duplicate", more[0])
        wait_until(
            page,
            "(view) => view.sources.acme.totals.applied === 8"
            " && view.sources.acme.totals.duplicate === 4",
        )
        wait_until(page, ALL_CAUGHT_UP, sorted(PROJECTIONS))
    assert page.evaluate("window.sameDocument") is True, "the page was reloaded"
    view = latest(page)
    acme = view["sources"]["acme"]
    assert view["scrapes"] > scrapes_before
    assert acme["totals"]["applied"] == 8
    assert acme["deliveries"] == 15
    assert acme["duplicateRatio"] == 4 / 15
    # The last minute holds only what was sent since the page opened.
    assert acme["duplicateRatioLastMinute"] == pytest.approx(1 / 3)
    assert acme["retryDelayMeanLastMinute"] > 0

    # The charts hold those numbers: the rate series, times the seconds
    # between scrapes, add up to what was sent since the page opened.
    series = page.evaluate("window.dashboard.series()")
    rate = series["charts"]["source:acme:rate"]
    assert rate["labels"] == list(OUTCOMES)
    time_axis = rate["data"][0]
    assert time_axis == series["time"] and len(time_axis) == view["scrapes"]

    def sent_since_open(outcome: str) -> float:
        column = rate["data"][1 + OUTCOMES.index(outcome)]
        return sum(
            column[k] * (time_axis[k] - time_axis[k - 1])
            for k in range(1, len(time_axis))
        )

    assert sent_since_open("applied") == pytest.approx(2)
    assert sent_since_open("duplicate") == pytest.approx(1)
    assert sent_since_open("rejected") == 0
    ratio = series["charts"]["source:acme:duplicate-ratio"]
    assert ratio["labels"] == ["last minute", "since start"]
    assert ratio["data"][2][-1] == 4 / 15
    assert ratio["data"][1][-1] == pytest.approx(1 / 3)
    delay = series["charts"]["source:acme:retry-delay"]
    assert delay["data"][2][-1] == acme["retryDelayMean"]
    lag = series["charts"]["projections:lag"]
    assert lag["labels"] == sorted(PROJECTIONS)
    assert all(column[-1] == 0 for column in lag["data"][1:])

    # What a person sees: the table's numbers, and the charts drawn.
    table = page.locator("section[data-source=acme] table.source-table").inner_text()
    assert "26.7%" in table, table
    assert acme["parked"] == 2, "creating ord_6 and ord_7 released nothing"
    shown = page.locator("section[data-source=acme] table.source-table")
    assert shown.locator("td.parked-waiting").inner_text() == "2"
    oldest = shown.locator("td.parked-oldest").inner_text()
    assert oldest.endswith((" ms", " s", " min")), oldest
    assert shown.locator("td.parked-oldest.failed").count() == 0, "not late yet"
    assert page.locator("canvas").count() == 4
    page.evaluate("() => new Promise((done) => setTimeout(done, 2500))")
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    log.warning("dashboard screenshot: %s", screenshot)
    print(f"\ndashboard screenshot: {screenshot}")
    print(f"browser test took {time.monotonic() - started:.1f} s")


def test_the_page_asks_for_a_token_when_metrics_need_one_and_keeps_it_in_the_tab(
    sqlite_url: str, secret: str, partner: Partner, page: Page, tmp_path: Path
) -> None:
    directory = tmp_path / "guarded"
    directory.mkdir()
    server = Server(directory, sqlite_url, secret)
    config = Path(server.env["IDEMSYNC_CONFIG"])
    config.write_text(
        config.read_text()
        + "\n[server]\nmetrics_require_token = true\n"
        + '\n[tokens.dashboard]\nrole = "reader"\n'
        + f'sha256 = "{token_hash(TOKENS["reader"])}"\n'
    )
    server.start()
    try:
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            expect(client, "applied", partner.order_created("ord_1"))
        page.goto(f"{server.base_url}/dashboard")
        wait_until(page, "(view) => view.error !== null")
        view = latest(page)
        assert view["scrapes"] == 0
        assert "401" in view["error"] and "token" in view["error"]
        assert "needs a bearer token" in page.locator("#status").inner_text()

        page.fill("#token", "idm_not-a-token")
        page.click("#token-form button[type=submit]")
        wait_until(page, "(view) => view.error && view.error.includes('refused')")

        page.fill("#token", TOKENS["reader"])
        page.click("#token-form button[type=submit]")
        wait_until(page, "(view) => view.scrapes >= 1")
        assert latest(page)["sources"]["acme"]["totals"]["applied"] == 1
        stored = page.evaluate(
            "[sessionStorage.getItem('idemsync.dashboard.token'), localStorage.length]"
        )
        assert stored == [TOKENS["reader"], 0]
        assert TOKENS["reader"] not in page.url
    finally:
        server.stop()
    assert TOKENS["reader"] not in server.log_path.read_text()


TRICKY = r"""# HELP idemsync_x_total a help text with \\ and \n in it
# TYPE idemsync_x_total counter
idemsync_x_total{a="say \"hi\"",b="back\\slash",c="two\nlines"} 3 1700000000000
idemsync_x_bucket{le="+Inf"} +Inf
idemsync_x_bucket{le="1.0",} 1.5e+03
idemsync_y -Inf
idemsync_z NaN
idemsync_broken{a="never closed} 1
idemsync_no_value{a="b"}
"""


def test_the_page_parses_the_prometheus_text_format_with_its_edge_cases(
    serve: ServerFactory, sqlite_url: str, page: Page
) -> None:
    server = serve(sqlite_url)
    page.goto(f"{server.base_url}/dashboard")
    wait_until(page, "(view) => view.scrapes >= 1")
    parsed = page.evaluate(
        """(text) => window.dashboard.parse(text).map(
            (s) => [s.name, s.labels, String(s.value)])""",
        TRICKY,
    )
    assert parsed == [
        [
            "idemsync_x_total",
            {"a": 'say "hi"', "b": "back\\slash", "c": "two\nlines"},
            "3",
        ],
        ["idemsync_x_bucket", {"le": "+Inf"}, "Infinity"],
        ["idemsync_x_bucket", {"le": "1.0"}, "1500"],
        ["idemsync_y", {}, "-Infinity"],
        ["idemsync_z", {}, "NaN"],
    ]
