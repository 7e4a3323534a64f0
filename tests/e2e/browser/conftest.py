"""Fixtures of the browser tests: one headless Chromium per module, a fresh
page per test whose script and console errors fail it, and a SQLite copy of
the migrated template for the server under test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.browser.chromium import CHROMIUM, CHROMIUM_ARGS, PROBLEM

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if PROBLEM is not None:
        pytest.fail(f"CI=true and {PROBLEM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page whose script errors and console errors fail the test
    (401, 403 and 409 answers aside: the pages meet them on purpose)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    yield opened
    context.close()
    expected = ("401 (Unauthorized)", "403 (Forbidden)", "409 (Conflict)")
    unexpected = [p for p in problems if not any(e in p for e in expected)]
    assert not unexpected, "\n".join(unexpected)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "idemsync.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"
