"""A partner that sends what a Standard Webhooks sender sends: envelopes
signed with the reference ``standardwebhooks`` library."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import msgspec
from httpx import Response
from standardwebhooks.webhooks import Webhook

from infrastructure.access import Role, Token, token_hash
from infrastructure.config_tables import DatabaseTable, ServerTable
from infrastructure.settings import Settings, SourceSettings

_START = datetime(2026, 11, 1, tzinfo=UTC)

TOKENS = {
    "reader": "idm_test-reader-6b1e0f",
    "auditor": "idm_test-auditor-2c9d4a",
    "admin": "idm_test-admin-8f3a7c",
}
"""One bearer token per role, configured in every ``make_settings``."""
WRONG_TOKEN = "idm_test-not-configured-0000"


def auth(role: Role | str) -> dict[str, str]:
    """The headers of a request with the test token of ``role``."""
    label = role.label if isinstance(role, Role) else role
    return {"authorization": f"Bearer {TOKENS[label]}"}


def configured_tokens() -> MappingProxyType[str, Token]:
    """``TOKENS`` as configured tokens (named ``test-<role>``)."""
    return MappingProxyType(
        {
            f"test-{label}": Token(
                f"test-{label}", Role.parse(label), token_hash(value)
            )
            for label, value in TOKENS.items()
        }
    )


@dataclass(frozen=True)
class Request:
    """One signed request, ready to send."""

    key: str
    body: bytes
    headers: dict[str, str]


class Partner:
    """Builds and signs deliveries; each envelope gets a fresh key."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.webhook = Webhook(secret)
        self._clock = itertools.count()

    def envelope(self, type_: str, **data: Any) -> bytes:
        moment = _START + timedelta(seconds=next(self._clock))
        return json.dumps(
            {"type": type_, "timestamp": moment.isoformat(), "data": data}
        ).encode()

    def sign(
        self, body: bytes, key: str | None = None, at: datetime | None = None
    ) -> Request:
        """Sign ``body`` as sent at ``at`` (now by default)."""
        key = key or f"msg_{uuid.uuid4().hex}"
        at = at or datetime.now(UTC)
        signature = self.webhook.sign(key, at, body.decode())
        headers = {
            "content-type": "application/json",
            "webhook-id": key,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature,
        }
        return Request(key, body, headers)

    def event(self, type_: str, key: str | None = None, **data: Any) -> Request:
        return self.sign(self.envelope(type_, **data), key)

    def order_created(
        self,
        order_id: str,
        *,
        customer_id: str = "cus_1",
        currency: str = "EUR",
        total_cents: int = 5000,
        key: str | None = None,
        **extra: Any,
    ) -> Request:
        """An ``order.created`` delivery; ``extra`` goes into ``data`` after
        the order's fields (``sequence``, an unknown field...)."""
        return self.event(
            "order.created",
            key,
            order_id=order_id,
            customer_id=customer_id,
            currency=currency,
            total_cents=total_cents,
            **extra,
        )


class GitHubPartner:
    """Signs as GitHub does: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256
    of the body>``, no timestamp, the key in ``X-GitHub-Delivery`` (a GUID,
    outside the signature: anyone holding a captured body and its signature
    can send it again under another key)."""

    def __init__(self, secret: str, event: str = "webhook") -> None:
        self.secret = secret.encode()
        self.event = event

    def sign(self, body: bytes, key: str | None = None) -> Request:
        key = key or str(uuid.uuid4())
        signature = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        headers = {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/idemsync-tests",
            "x-github-delivery": key,
            "x-github-event": self.event,
            "x-hub-signature-256": f"sha256={signature}",
        }
        return Request(key, body, headers)


def send(client: httpx.Client, request: Request, source: str = "acme") -> Response:
    """POST ``request`` to the webhook endpoint of ``source``."""
    return client.post(
        f"/webhooks/{source}", content=request.body, headers=request.headers
    )


def post(
    client: httpx.Client, request: Request, source: str = "acme"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``send``, answered as (status code, JSON body, headers)."""
    response = send(client, request, source)
    return response.status_code, response.json(), dict(response.headers)


def make_settings(database_url: str, secret: str, **source: object) -> Settings:
    acme = SourceSettings(name="acme", scheme="standard-webhooks", secrets=(secret,))
    acme = msgspec.structs.replace(acme, **source)
    return Settings(
        database_url=database_url,
        sources=MappingProxyType({"acme": acme}),
        config_path=Path("tests"),
        database=DatabaseTable(lock_timeout_seconds=2.0, pool_size=4),
        server=ServerTable(retry_after_seconds=3),
        tokens=configured_tokens(),
    )
