"""Where the browser tests find Chromium, and why they cannot run when they
cannot: Debian's ``/usr/bin/chromium`` driven by Playwright for Python with
that executable (Playwright's own browser download is never used)."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("IDEMSYNC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    # What this machine needs (headless, as root, no network but loopback);
    # Playwright adds --headless and a fresh --user-data-dir of its own.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_problem() -> str | None:
    """Why the browser tests cannot run, in one line; None when they can."""
    if not CHROMIUM.is_file():
        return (
            f"Chromium not found at {CHROMIUM} "
            "(apt-get install chromium, or set IDEMSYNC_CHROMIUM)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"Playwright for Python not installed ({error}): pip install -e '.[dev]'"
    return None


PROBLEM = chromium_problem()
"""Without Chromium (or Playwright) the browser tests skip with this line,
except under ``CI=true``, where they fail."""
SKIP = PROBLEM is not None and os.environ.get("CI") != "true"
