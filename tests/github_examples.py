"""GitHub's own example payloads (``tests/fixtures/github/``, see its README)
and deliveries of them signed as GitHub signs: ``X-Hub-Signature-256:
sha256=<hex HMAC-SHA256 of the raw body>`` with the webhook's secret."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "github"


@dataclass(frozen=True)
class Example:
    """One vendored payload and the event GitHub sends it as."""

    event: str
    body: bytes


def examples() -> list[Example]:
    """Every vendored example; its event name is its file name up to the
    first dot (``issues.opened.json`` is an ``issues`` event)."""
    return [
        Example(path.name.split(".")[0], path.read_bytes())
        for path in sorted(EXAMPLES.glob("*.json"))
    ]


def github_signature(secret: str, body: bytes) -> str:
    """The value of ``X-Hub-Signature-256`` for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def github_headers(
    secret: str,
    body: bytes,
    event: str | None,
    delivery: str | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """The headers GitHub sends with ``body`` (no ``X-GitHub-Event`` when
    ``event`` is None); ``delivery`` is ``X-GitHub-Delivery``, a fresh GUID
    by default (a redelivery reuses it)."""
    headers = {
        "content-type": content_type,
        "user-agent": "GitHub-Hookshot/044aadd",
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-github-hook-id": "109948940",
        "x-github-hook-installation-target-id": "1296269",
        "x-github-hook-installation-target-type": "repository",
        "x-hub-signature-256": github_signature(secret, body),
    }
    if event is not None:
        headers["x-github-event"] = event
    return headers
