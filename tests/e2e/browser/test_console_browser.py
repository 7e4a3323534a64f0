"""``/console`` in a real browser (headless Chromium, see ``chromium.py``),
on both backends, against a running ``idemsync serve`` that took deliveries
signed with the ``standardwebhooks`` library: each role signs in with its
token and sees what it may. An auditor finds a delivery by key, by object id
and by text of its payload, opens it (a ``<script>`` in the payload stays
text, signature headers are hidden), follows it to its order's timeline
(hash chain intact) and asks for the state as of an earlier instant, reads
the parked queue without its actions, and sees when a redacted delivery was
redacted and its digest instead of its payload. An admin releases one parked
delivery and discards another, reads the sources with their charts, rebuilds
a projection (dry run first) and runs a replay dry run. A reader sees
orders, never a delivery or a payload. The console works by keyboard and
does not shift as data arrives. Each view's screenshot is written to
``var/test-output/console/`` (``IDEMSYNC_TEST_OUTPUT`` to change it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from domain.application import SyncService
from domain.commands import CreateOrder
from infrastructure.access import token_hash
from infrastructure.persistence.database import Database
from infrastructure.privacy.redaction import redact_deliveries
from tests.e2e.browser.chromium import PROBLEM, SKIP
from tests.e2e.conftest import Server
from tests.partner import TOKENS, WRONG_TOKEN, Partner, Request, post

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.e2e]

if SKIP:
    pytest.skip(str(PROBLEM), allow_module_level=True)  # one line for the module

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
"""A carrier name no partner should send: it must show as these characters."""
OUTPUT = Path(
    os.environ.get(
        "IDEMSYNC_TEST_OUTPUT",
        Path(__file__).resolve().parents[3] / "var" / "test-output",
    )
)
WAIT_MS = 15_000
REDACTED_AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


@pytest.fixture
def console_server(database_url: str, secret: str, tmp_path: Path) -> Iterator[Server]:
    """``idemsync serve`` with one token per role."""
    directory = tmp_path / "console"
    directory.mkdir()
    server = Server(directory, database_url, secret)
    config = Path(server.env["IDEMSYNC_CONFIG"])
    config.write_text(
        config.read_text()
        + "".join(
            f'\n[tokens.test-{role}]\nrole = "{role}"\nsha256 = "{token_hash(token)}"\n'
            for role, token in TOKENS.items()
        )
    )
    server.start()
    yield server
    server.stop()


class Day:
    """The deliveries sent before the browser opens, and an instant between
    the order's creation and its shipping."""

    def __init__(self, server: Server, partner: Partner) -> None:
        self.created = partner.order_created("ord_1")
        self.shipped = partner.event(
            "order.shipped",
            order_id="ord_1",
            carrier=HOSTILE,
            tracking_number="TRK-77",
        )
        self.early = partner.event("order.paid", order_id="ord_9", amount_cents=100)
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            self.send(client, self.created, "applied")
            time.sleep(0.05)
            self.between = datetime.now(UTC).isoformat()
            time.sleep(0.05)
            self.send(client, self.shipped, "applied")
            self.send(client, self.early, "parked")
            self.send(client, self.created, "duplicate")
            deadline = time.monotonic() + WAIT_MS / 1000
            reader = {"authorization": f"Bearer {TOKENS['reader']}"}
            while client.get("/views/orders/ord_1", headers=reader).status_code != 200:
                assert time.monotonic() < deadline, "the orders view never had ord_1"
                time.sleep(0.1)

    @staticmethod
    def send(client: httpx.Client, request: Request, outcome: str) -> None:
        status, body, _ = post(client, request)
        assert body["outcome"] == outcome, (status, body)


def exists_with_parked(database_url: str, order_id: str) -> None:
    """Make ``order_id`` exist while a delivery still waits on it, as a store
    written by code from before release-on-create would hold it (the only
    way an existing object has something to release by hand)."""
    database = Database(database_url)
    service = SyncService(env=database.eventsourcing_env())
    try:
        order = service.find("order", order_id, "acme")
        assert order is not None and order.parked
        created = CreateOrder(
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
            order_id=order_id,
            customer_id="cus_1",
            currency="EUR",
            total_cents=5000,
        )
        order.record(created, {"status": "created"}, created.position(), "acme", "k0")
        service.save(order)
    finally:
        service.close()
        database.close()


def shot(page: Page, name: str, backend: str) -> None:
    folder = OUTPUT / "console"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{backend}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(b"\x89PNG")


def ready(page: Page, view: str) -> None:
    page.wait_for_selector(
        f'main[data-view="{view}"][data-state="ready"]', timeout=WAIT_MS
    )


def sign_in(page: Page, server: Server, role: str) -> None:
    page.goto(f"{server.base_url}/console")
    ready(page, "sign-in")
    page.fill("#token", TOKENS[role])
    page.click("form.sign-in button[type=submit]")
    page.wait_for_selector(f"#who:has-text('({role})')", timeout=WAIT_MS)


def rows(page: Page) -> int:
    return page.locator("main tbody tr td a[href^='#/delivery/']").count()


def backend(url: str) -> str:
    return "postgres" if url.startswith("postgresql") else "sqlite"


def test_an_auditor_finds_a_delivery_opens_it_and_follows_it_to_its_order(
    console_server: Server, partner: Partner, page: Page, database_url: str
) -> None:
    from playwright.sync_api import expect

    day = Day(console_server, partner)
    name = backend(database_url)
    page.goto(f"{console_server.base_url}/console")
    ready(page, "sign-in")
    page.fill("#token", WRONG_TOKEN)
    page.click("form.sign-in button[type=submit]")
    expect(page.locator("form.sign-in [role=alert]")).to_have_text(
        "This token is not valid.", timeout=WAIT_MS
    )
    shot(page, "sign-in", name)

    sign_in(page, console_server, "auditor")
    ready(page, "deliveries")
    assert page.locator("#nav a").all_inner_texts() == [
        "Deliveries",
        "Parked",
        "Orders",
        "Sources",
        "API reference",
    ]
    expect(page.locator("main tbody tr")).to_have_count(3, timeout=WAIT_MS)
    stored = page.evaluate("sessionStorage.getItem('idemsync.token')")
    assert stored == TOKENS["auditor"]
    assert page.evaluate("localStorage.length") == 0
    shot(page, "deliveries", name)

    page.fill("input[name=key]", day.shipped.key)
    page.click("form.filters button[type=submit]")
    expect(page.locator("main tbody tr")).to_have_count(1, timeout=WAIT_MS)
    assert page.locator("main tbody tr a").first.inner_text() == day.shipped.key

    page.fill("input[name=key]", "")
    page.fill("input[name=object]", "ord_1")
    page.click("form.filters button[type=submit]")
    expect(page.locator("main tbody tr")).to_have_count(2, timeout=WAIT_MS)

    page.fill("input[name=object]", "")
    page.fill("input[name=contains]", "TRK-77")
    page.click("form.filters button[type=submit]")
    expect(page.locator("main tbody tr")).to_have_count(1, timeout=WAIT_MS)

    page.click(f"main tbody a:text-is('{day.shipped.key}')")
    ready(page, "delivery")
    payload = page.locator("pre[data-payload]").inner_text()
    assert HOSTILE.replace('"', '\\"') in payload, "the payload shows as its text"
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("window.__pwned") is None
    text = page.locator("main").inner_text()
    signature = day.shipped.headers["webhook-signature"]
    assert signature not in text and signature.split(",")[-1] not in text
    assert f"hidden ({len(signature)} characters)" in text
    assert "applied" in text
    shot(page, "delivery", name)

    page.click("main a:text-is('order ord_1') >> nth=0")
    ready(page, "object")
    expect(page.locator("[data-object-state] dd").first).to_have_text("shipped")
    timeline = page.locator("main table tbody tr")
    assert timeline.count() >= 2
    chain = page.locator("[data-chain]")
    assert chain.get_attribute("data-chain") == "intact"
    assert f"intact ({timeline.count()} events" in chain.inner_text()
    assert page.locator(f"main table a:has-text('{day.shipped.key}')").count() == 1
    shot(page, "object", name)

    page.fill("input[name=as_of]", day.between)
    page.click("main form.filters button[type=submit]")
    expect(page.locator("main h3").first).to_have_text(f"State as of {day.between}")
    expect(page.locator("[data-object-state] dd").first).to_have_text(
        "created", timeout=WAIT_MS
    )
    page.click(f"main table a:has-text('{day.created.key}') >> nth=0")
    ready(page, "delivery")
    assert day.created.key in page.locator("main h2").inner_text()

    page.evaluate("location.hash = '#/projections'")
    ready(page, "forbidden")
    assert "needs the role admin" in page.locator("main").inner_text()

    page.click("#nav a:text-is('Parked')")
    ready(page, "parked")
    expect(page.locator("main tbody tr")).to_have_count(1)
    assert day.early.key in page.locator("main tbody").inner_text()
    assert page.locator("main button").count() == 0, "an auditor sees no action"


def test_an_admin_releases_and_discards_parked_deliveries_rebuilds_and_replays(
    console_server: Server, partner: Partner, page: Page, database_url: str
) -> None:
    from playwright.sync_api import expect

    day = Day(console_server, partner)
    name = backend(database_url)
    sign_in(page, console_server, "admin")
    assert page.locator("#nav a").all_inner_texts() == [
        "Deliveries",
        "Parked",
        "Orders",
        "Sources",
        "Projections",
        "Replay",
        "API reference",
    ]
    waiting = partner.event("order.paid", order_id="ord_7", amount_cents=5000)
    with httpx.Client(base_url=console_server.base_url, timeout=10) as client:
        Day.send(client, waiting, "parked")
    exists_with_parked(database_url, "ord_7")
    page.click("#nav a:text-is('Parked')")
    ready(page, "parked")
    expect(page.locator("main tbody tr")).to_have_count(2)
    held = page.locator("main tbody tr", has_text=waiting.key)
    held.locator("input").fill("ord_7 exists now")
    held.locator("button:text-is('Release')").click()
    expect(page.locator("#settled")).to_have_text(
        f"{waiting.key}: released by test-admin, now applied."
    )
    expect(page.locator("main tbody tr")).to_have_count(1)
    row = page.locator("main tbody tr").first
    assert day.early.key in row.inner_text()
    row.locator("button:text-is('Release')").click()
    expect(page.locator("#settled")).to_have_text(
        "Say why first: the reason is kept in the event."
    )
    row.locator("input").fill("the partner says ord_9 was created")
    row.locator("button:text-is('Release')").click()
    expect(page.locator("#settled")).to_contain_text("does not exist yet")
    row.locator("input").fill("ord_9 was deleted at the partner")
    shot(page, "parked", name)
    row.locator("button:text-is('Discard')").click()
    expect(page.locator("#settled")).to_have_text(
        f"{day.early.key}: discarded by test-admin, now ignored "
        "(discarded by test-admin: ord_9 was deleted at the partner)."
    )
    expect(page.locator("main tbody")).to_have_text("Nothing is waiting.")
    page.evaluate("location.hash = '#/object/order/ord_9'")
    ready(page, "object")
    assert "Discarded" in page.locator("main table").inner_text()

    page.click("#nav a:text-is('Sources')")
    ready(page, "sources")
    acme = page.locator("main tbody tr").first.locator("td").all_inner_texts()
    # source, applied, parked, rejected, stale, ignored, unique, per minute,
    # duplicates, ratio, delay (counts are first outcomes: the discard
    # resolved the parked one, it did not change its first answer)
    assert acme[:7] == ["acme", "2", "2", "0", "0", "0", "4"]
    assert acme[8:10] == ["1", "20%"], "duplicates / all 2xx, as the charts"
    page.wait_for_function(
        """() => {
            const framed = document.querySelector("iframe.charts");
            const view = framed && framed.contentWindow.dashboard;
            return view && view.latest().scrapes >= 1;
        }""",
        timeout=WAIT_MS,
    )
    charts = next(f for f in page.frames if "dashboard?embedded=1" in f.url)
    totals = charts.evaluate("window.dashboard.latest().sources.acme.totals")
    assert (totals["applied"], totals["parked"], totals["duplicate"]) == (2, 2, 1)
    assert charts.locator("figure.chart canvas").count() >= 3
    assert not charts.locator("#token-form").is_visible()
    shot(page, "sources", name)

    page.click("#nav a:text-is('Projections')")
    ready(page, "projections")
    orders = page.locator("main tbody tr", has_text="orders").first
    assert orders.locator("td").nth(3).inner_text() in ("0", "1", "2", "3", "4", "5")
    orders.locator("button:text-is('Dry run')").click()
    report = page.locator("#rebuild[data-state=done] [data-report]")
    expect(report).to_be_visible(timeout=WAIT_MS)
    text = report.inner_text()
    assert "dry run (not swapped)" in text and "no difference" in text
    shot(page, "projections", name)

    orders.locator("button:text-is('Rebuild')").click()
    expect(page.locator("#rebuild h3")).to_have_text("Rebuild of orders")
    report = page.locator("#rebuild[data-state=done] [data-report]")
    expect(report).to_be_visible(timeout=WAIT_MS)
    assert "Swapped\nyes" in report.inner_text()

    page.click("#nav a:text-is('Replay')")
    ready(page, "replay")
    assert page.locator("input[name=source]").input_value() == "acme"
    assert page.locator("button:text-is('Apply')").is_disabled()
    page.click("button:text-is('Dry run')")
    report = page.locator("#replay[data-state=done] [data-report]")
    expect(report).to_contain_text("Dry run: would change 0 of 4", timeout=WAIT_MS)
    assert page.locator("#replay tbody tr").count() == 4
    shot(page, "replay", name)
    assert page.locator("button:text-is('Apply')").is_enabled()
    page.select_option("select[name=outcome]", "parked")
    assert page.locator("button:text-is('Apply')").is_disabled()


def test_a_reader_sees_orders_and_never_a_delivery_or_a_payload(
    console_server: Server, partner: Partner, page: Page, database_url: str
) -> None:
    Day(console_server, partner)
    sign_in(page, console_server, "reader")
    ready(page, "orders")
    assert page.locator("#nav a").all_inner_texts() == [
        "Orders",
        "Sources",
        "API reference",
    ]
    assert page.locator("main tbody tr").all_inner_texts()[0].startswith("ord_1")
    shot(page, "orders", backend(database_url))
    page.click("main tbody a:text-is('ord_1')")
    ready(page, "order")
    assert "Timeline" not in page.locator("main").inner_text()
    page.evaluate("location.hash = '#/deliveries'")
    ready(page, "forbidden")
    assert "needs the role auditor" in page.locator("main").inner_text()
    page.evaluate("location.hash = '#/delivery/acme/anything'")
    ready(page, "forbidden")
    assert "TRK-77" not in page.content()
    page.click("#sign-out")
    ready(page, "sign-in")
    assert page.evaluate("sessionStorage.length") == 0


def test_a_redacted_delivery_shows_when_and_its_digest_instead_of_its_payload(
    console_server: Server, partner: Partner, page: Page, database_url: str
) -> None:
    day = Day(console_server, partner)
    database = Database(database_url)
    try:
        pairs = [("acme", day.shipped.key)]
        assert redact_deliveries(database.engine(), pairs, REDACTED_AT) == 1
    finally:
        database.close()
    sign_in(page, console_server, "auditor")
    page.evaluate(f"location.hash = '#/delivery/acme/{day.shipped.key}'")
    ready(page, "delivery")
    shown = page.locator("p[data-redacted]").inner_text()
    assert shown.startswith("redacted at 2026-12-07T09:30:00") and "(sha256 " in shown
    assert page.locator("pre[data-payload]").count() == 0
    payload = page.locator("section:has(> h3:text-is('Payload'))").inner_text()
    assert "TRK-77" not in payload, "(the events it caused are the log's)"
    shot(page, "delivery-redacted", backend(database_url))


def test_the_api_reference_lists_the_operations_of_openapi_json(
    console_server: Server, page: Page
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{console_server.base_url}/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=WAIT_MS)
    text = page.locator("#swagger-ui").inner_text()
    for path in ("/webhooks/{source}", "/audit/deliveries", "/auth/me"):
        assert path in text, path
    page.screenshot(path=str(OUTPUT / "console" / "docs.png"), full_page=False)


LAYOUT_SHIFT = """() => new Promise((resolve) => {
    let total = 0;
    new PerformanceObserver((entries) => {
        for (const entry of entries.getEntries()) {
            if (!entry.hadRecentInput) total += entry.value;
        }
    }).observe({ type: "layout-shift", buffered: true });
    setTimeout(() => resolve(total), 6500);
})"""
"""The page's cumulative layout shift over one live refresh (5 s) and more."""


def test_the_console_is_usable_by_keyboard_and_does_not_shift_when_data_arrives(
    console_server: Server, partner: Partner, page: Page
) -> None:
    from playwright.sync_api import expect

    Day(console_server, partner)
    page.goto(f"{console_server.base_url}/console")
    ready(page, "sign-in")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(TOKENS["auditor"])
    page.keyboard.press("Enter")
    ready(page, "deliveries")
    expect(page.locator("main tbody tr")).to_have_count(3)
    shift = page.evaluate(LAYOUT_SHIFT)
    assert shift < 0.01, f"layout shift {shift} while the log loaded and refreshed"

    page.focus("#nav a:text-is('Parked')")
    page.keyboard.press("Enter")
    ready(page, "parked")
    page.focus("main tbody a")
    page.keyboard.press("Enter")
    ready(page, "delivery")
    assert page.evaluate("document.activeElement.tagName") in ("A", "BODY", "MAIN")
    page.keyboard.press("Tab")
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused != "none", "the focused element shows where the keyboard is"
