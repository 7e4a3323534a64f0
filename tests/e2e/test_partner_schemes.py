"""Every partner scheme of specification §3, over a real socket.

One ``idemsync serve`` per backend, configured with one source per scheme
(README "Partners"), secrets from its environment. Each partner's request is
built the way that partner builds it, signed by the partner's own library where
there is one (``standardwebhooks``, ``svix``, ``stripe``), and that library
confirms the request before it is sent. The GitHub source uses the
example plugin mapping of ``tests/plugin_mappings.py``; the Shopify source has
no mapping line and gets the built-in ``shopify``.

Also ``idemsync config check`` and ``idemsync serve`` on a broken
configuration: exit 2 naming the key at fault, before anything is bound.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets as random
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks.webhooks
import stripe
import svix.webhooks

from tests.conftest import PG_SERVER, pg_execute
from tests.e2e.conftest import Server
from tests.server_process import free_port, serve_command
from tests.store import Store

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SOURCES = (
    "stdwh",
    "svixsrc",
    "stripe",
    "github",
    "shopify",
    "billing",
    "rotated",
    "unsigned",
)
SIGNED = tuple(name for name in SOURCES if name != "unsigned")
UNSIGNED_WARNING = (
    "!!! source 'unsigned' accepts UNSIGNED webhooks (scheme none): "
    "anyone can write to it. Development only. !!!"
)
REFUSAL_REASONS = (
    "no matching signature",
    "missing header",
    "malformed",
    "timestamp",
    "tolerance",
    "no v1 signature",
)


def whsec() -> str:
    """A Standard Webhooks / Svix secret, as the sender's dashboard shows it."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def stripe_secret() -> str:
    return "whsec_" + random.token_hex(16)


def github_secret() -> str:
    return random.token_hex(32)  # openssl rand -hex 32


def shopify_secret() -> str:
    return "shpss_" + random.token_hex(16)


def billing_secret() -> str:
    return random.token_urlsafe(32)


SECRET_MAKERS: dict[str, Callable[[], str]] = {
    "STDWH_SECRET": whsec,
    "SVIX_SECRET": whsec,
    "STRIPE_WEBHOOK_SECRET": stripe_secret,
    "GITHUB_WEBHOOK_SECRET": github_secret,
    "SHOPIFY_CLIENT_SECRET": shopify_secret,
    "BILLING_SECRET": billing_secret,
    "OLD": whsec,
    "NEW": whsec,
}
SECRETS = {name: make() for name, make in SECRET_MAKERS.items()}


def config_text(
    rotated: tuple[str, ...] = ("OLD", "NEW"),
    github_mapping: str = "tests.plugin_mappings:map_github",
) -> str:
    rotated_secrets = ", ".join(f'"env:{name}"' for name in rotated)
    return f"""\
[database]
lock_timeout_seconds = 5.0

[sources.stdwh]
scheme = "standard-webhooks"
secrets = ["env:STDWH_SECRET"]
mapping = "standard"

[sources.svixsrc]
scheme = "standard-webhooks"
secrets = ["env:SVIX_SECRET"]

[sources.stripe]
scheme = "stripe"
secrets = ["env:STRIPE_WEBHOOK_SECRET"]
mapping = "stripe"
tolerance_seconds = 300

[sources.github]
scheme = "github"
secrets = ["env:GITHUB_WEBHOOK_SECRET"]
mapping = "{github_mapping}"

[sources.shopify]
scheme = "shopify"
secrets = ["env:SHOPIFY_CLIENT_SECRET"]

[sources.billing]
scheme = "hmac-sha256"
secrets = ["env:BILLING_SECRET"]
signature_header = "X-Billing-Signature"
signature_encoding = "hex"
signature_prefix = "sha256="
timestamp_header = "X-Billing-Timestamp"
key = "body:$.event_id"
mapping = "standard"

[sources.rotated]
scheme = "standard-webhooks"
secrets = [{rotated_secrets}]
mapping = "standard"

[sources.unsigned]
scheme = "none"
allow_unsigned = true
mapping = "standard"
"""


def process_env(config: Path, database_url: str) -> dict[str, str]:
    """The server's environment: its secrets, and the repository on the path
    so that ``tests.plugin_mappings`` is importable (as a user's own package
    would be installed)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        **SECRETS,
        "IDEMSYNC_CONFIG": str(config),
        "IDEMSYNC_DATABASE_URL": database_url,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("ACME_SECRET", None)
    return env


# -- what each partner sends -----------------------------------------------------------

EVENT_AT = int(time.time()) - 600
"""When the partners' objects changed: the times inside the payloads."""


@dataclass(frozen=True)
class Delivery:
    key: str
    body: bytes
    headers: dict[str, str]


Payload = tuple[str, bytes]  # the idempotency key, the raw body
Signer = Callable[[str, str, bytes, int], dict[str, str]]  # secret, key, body, at


def iso(at: int, tz: timezone = UTC) -> str:
    return datetime.fromtimestamp(at, tz).isoformat().replace("+00:00", "Z")


def hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def order_created(uid: int, **top: Any) -> bytes:
    """A standard envelope; ``top`` goes at its top level (``event_id``)."""
    return json.dumps(
        {
            **top,
            "type": "order.created",
            "timestamp": iso(EVENT_AT),
            "data": {
                "order_id": f"ord_{uid}",
                "customer_id": f"cus_{uid}",
                "currency": "EUR",
                "total_cents": 4200,
            },
        }
    ).encode()


def standard_order(uid: int) -> Payload:
    return f"msg_{uid}", order_created(uid)


def svix_customer(uid: int) -> Payload:
    body = {
        "type": "customer.upserted",
        "timestamp": iso(EVENT_AT),
        "data": {
            "customer_id": f"cus_{uid}",
            "email": f"jenny.rosen+{uid}@example.com",
            "name": "Jenny Rosen",
        },
    }
    return f"msg_{uid}", json.dumps(body).encode()


def standard_signer(library: Callable[[str], Any], prefix: str) -> Signer:
    """A Standard Webhooks sender (``webhook-*``) or Svix (``svix-*``), signing
    with its own library."""

    def sign(secret: str, key: str, body: bytes, at: int) -> dict[str, str]:
        signature = library(secret).sign(
            key, datetime.fromtimestamp(at, UTC), body.decode()
        )
        return {
            "content-type": "application/json",
            "user-agent": f"{prefix}-sender/1.0",
            f"{prefix}-id": key,
            f"{prefix}-timestamp": str(at),
            f"{prefix}-signature": signature,
        }

    return sign


def stripe_checkout_completed(uid: int) -> Payload:
    event_id = f"evt_1Q{uid}"
    session = {
        "id": f"cs_test_a1{uid}",
        "object": "checkout.session",
        "amount_subtotal": 4200,
        "amount_total": 4200,
        "client_reference_id": f"ord_{uid}",
        "currency": "eur",
        "customer": f"cus_Q{uid}",
        "customer_details": {
            "address": {"country": "NL", "postal_code": "1012 AB"},
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        },
        "expires_at": EVENT_AT + 86_400,
        "livemode": False,
        "metadata": {},
        "mode": "payment",
        "payment_intent": f"pi_3Q{uid}",
        "payment_method_types": ["card", "ideal"],
        "payment_status": "paid",
        "status": "complete",
        "success_url": "https://shop.example.com/thanks",
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    }
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": EVENT_AT,
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
    }
    return event_id, json.dumps(event, indent=2).encode()


def sign_stripe(secret: str, key: str, body: bytes, at: int) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=at
    )
    return {
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "stripe-signature": header,
    }


def github_user(login: str, user_id: int) -> dict[str, Any]:
    return {
        "login": login,
        "id": user_id,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": "https://github.com/images/error/octocat_happy.gif",
        "type": "User",
        "site_admin": False,
    }


REPOSITORY = {
    "id": 1296269,
    "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
    "name": "Hello-World",
    "full_name": "octocat/Hello-World",
    "private": False,
}


def github_issue_opened(uid: int) -> Payload:
    user = github_user(f"octocat-{uid}", uid % 10**8)
    issue = {
        "url": "https://api.github.com/repos/octocat/Hello-World/issues/1347",
        "html_url": "https://github.com/octocat/Hello-World/issues/1347",
        "id": 1,
        "node_id": "MDU6SXNzdWUx",
        "number": 1347,
        "title": "Found a bug — the café page crashes",
        "user": user,
        "labels": [],
        "state": "open",
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": 0,
        "created_at": iso(EVENT_AT),
        "updated_at": iso(EVENT_AT),
        "closed_at": None,
        "author_association": "CONTRIBUTOR",
        "body": "I'm having a problem with this.",
    }
    body = {
        "action": "opened",
        "issue": issue,
        "repository": REPOSITORY,
        "sender": user,
    }
    return str(uuid.uuid4()), json.dumps(body, ensure_ascii=False).encode()


def github_signer(event: str) -> Signer:
    def sign(secret: str, key: str, body: bytes, at: int) -> dict[str, str]:
        sha1 = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        return {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/044aadd",
            "x-github-delivery": key,
            "x-github-event": event,
            "x-github-hook-id": "292430182",
            "x-github-hook-installation-target-id": "1296269",
            "x-github-hook-installation-target-type": "repository",
            "x-hub-signature": f"sha1={sha1}",
            "x-hub-signature-256": f"sha256={hmac_sha256(secret, body).hex()}",
        }

    return sign


SHOPIFY_ORDER, SHOPIFY_CUSTOMER = 820982911946154508, 115310627314723954


def shopify_order_created(uid: int, **changes: Any) -> Payload:
    created = iso(EVENT_AT, timezone(timedelta(hours=-5)))
    customer = {
        "id": SHOPIFY_CUSTOMER + uid % 10**6,
        "email": "zoë.müller@example.com",
        "first_name": "Zoë",
        "last_name": "Müller",
        "state": "enabled",
        "currency": "EUR",
    }
    order = {
        "id": SHOPIFY_ORDER + uid % 10**9,
        "admin_graphql_api_id": f"gid://shopify/Order/{uid}",
        "app_id": 580111,
        "confirmation_number": "XPAV284CT",
        "confirmed": True,
        "contact_email": customer["email"],
        "created_at": created,
        "currency": "EUR",
        "current_total_price": "125.00",
        "email": customer["email"],
        "financial_status": "paid",
        "name": "#1001",
        "order_number": 1001,
        "presentment_currency": "EUR",
        "processed_at": created,
        "subtotal_price": "115.00",
        "total_price": "125.00",
        "total_tax": "0.00",
        "customer": customer,
        "line_items": [
            {
                "id": 866550311766439020,
                "name": "Crème brûlée torch",
                "price": "115.00",
                "quantity": 1,
                "sku": "TORCH-1",
            }
        ],
        "shipping_lines": [{"title": "Standard", "price": "10.00"}],
        **changes,
    }
    return str(uuid.uuid4()), json.dumps(order, ensure_ascii=False).encode()


def sign_shopify(secret: str, key: str, body: bytes, at: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": base64.b64encode(hmac_sha256(secret, body)).decode(),
        "x-shopify-shop-domain": "example.myshopify.com",
        "x-shopify-api-version": "2025-01",
        "x-shopify-webhook-id": key,
        "x-shopify-event-id": str(uuid.UUID(key).int ^ 1),
        "x-shopify-triggered-at": iso(at),
    }


def billing_order_created(uid: int) -> Payload:
    key = f"bill_evt_{uid}"
    return key, order_created(uid, event_id=key)


def sign_billing(secret: str, key: str, body: bytes, at: int) -> dict[str, str]:
    signature = hmac_sha256(secret, f"{at}.".encode() + body).hex()
    return {
        "content-type": "application/json",
        "x-billing-signature": f"sha256={signature}",
        "x-billing-timestamp": str(at),
    }


def unsigned_order_created(uid: int) -> Payload:
    return f"idem-{uid}", order_created(uid)


def no_signature(secret: str, key: str, body: bytes, at: int) -> dict[str, str]:
    return {"content-type": "application/json", "idempotency-key": key}


def library_accepts(source: str, delivery: Delivery, secret: str) -> None:
    """The partner's own library verifies what we are about to send."""
    body, headers = delivery.body, delivery.headers
    if source in ("stdwh", "rotated"):
        standardwebhooks.webhooks.Webhook(secret).verify(body, headers)
    elif source == "svixsrc":
        svix.webhooks.Webhook(secret).verify(body, headers)
    elif source == "stripe":
        event = stripe.Webhook.construct_event(
            body, headers["stripe-signature"], secret
        )
        assert event["type"] == "checkout.session.completed"
        assert event["id"] == delivery.key


@dataclass(frozen=True)
class PartnerCase:
    source: str
    secret_env: str | None
    payload: Callable[[int], Payload]
    sign: Signer
    signs_time: bool
    aggregate: Callable[[int], tuple[str, str]]
    state: Callable[[int], dict[str, Any]]
    """The aggregate's status and values after the first delivery."""

    def secret(self) -> str:
        return SECRETS[self.secret_env] if self.secret_env else ""

    def deliver(self, payload: Payload, at: int, secret: str | None = None) -> Delivery:
        key, body = payload
        signed_with = self.secret() if secret is None else secret
        return Delivery(key, body, self.sign(signed_with, key, body, at))


def order_state(uid: int) -> dict[str, Any]:
    values = {"customer_id": f"cus_{uid}", "currency": "EUR", "total_cents": 4200}
    return {"status": "created", "values": values}


def order_of(uid: int) -> tuple[str, str]:
    return "order", f"ord_{uid}"


CASES = {
    case.source: case
    for case in (
        PartnerCase(
            "stdwh",
            "STDWH_SECRET",
            standard_order,
            standard_signer(standardwebhooks.webhooks.Webhook, "webhook"),
            True,
            order_of,
            order_state,
        ),
        PartnerCase(
            "svixsrc",
            "SVIX_SECRET",
            svix_customer,
            standard_signer(svix.webhooks.Webhook, "svix"),
            True,
            lambda uid: ("customer", f"cus_{uid}"),
            lambda uid: {
                "status": "active",
                "values": {
                    "email": f"jenny.rosen+{uid}@example.com",
                    "name": "Jenny Rosen",
                },
            },
        ),
        PartnerCase(
            "stripe",
            "STRIPE_WEBHOOK_SECRET",
            stripe_checkout_completed,
            sign_stripe,
            True,
            order_of,
            lambda uid: {
                "status": "paid",
                "values": {
                    "customer_id": f"cus_Q{uid}",
                    "currency": "EUR",
                    "total_cents": 4200,
                    "paid_cents": 4200,
                },
            },
        ),
        PartnerCase(
            "github",
            "GITHUB_WEBHOOK_SECRET",
            github_issue_opened,
            github_signer("issues"),
            False,
            lambda uid: ("customer", f"gh-octocat-{uid}"),
            lambda uid: {"status": "active", "values": {"name": f"octocat-{uid}"}},
        ),
        PartnerCase(
            "shopify",
            "SHOPIFY_CLIENT_SECRET",
            shopify_order_created,
            sign_shopify,
            False,
            lambda uid: ("order", str(SHOPIFY_ORDER + uid % 10**9)),
            lambda uid: {
                "status": "paid",  # financial_status "paid": the built-in pays it
                "values": {
                    "customer_id": str(SHOPIFY_CUSTOMER + uid % 10**6),
                    "currency": "EUR",
                    "total_cents": 12500,
                    "paid_cents": 12500,
                },
            },
        ),
        PartnerCase(
            "billing",
            "BILLING_SECRET",
            billing_order_created,
            sign_billing,
            True,
            order_of,
            order_state,
        ),
        PartnerCase(
            "rotated",
            "OLD",
            standard_order,
            standard_signer(standardwebhooks.webhooks.Webhook, "webhook"),
            True,
            order_of,
            order_state,
        ),
        PartnerCase(
            "unsigned",
            None,
            unsigned_order_created,
            no_signature,
            False,
            order_of,
            order_state,
        ),
    )
}
assert tuple(CASES) == SOURCES


def new_uid() -> int:
    return 10**11 + random.randbelow(9 * 10**11)


# -- one server per backend ------------------------------------------------------------


class PartnerServer(Server):
    """The shared ``Server`` helper, configured by ``config_text`` and
    ``SECRETS`` instead of its one ``acme`` source."""

    def __init__(self, directory: Path, database_url: str) -> None:
        super().__init__(directory, database_url, secret="unused")
        self.config = Path(self.env["IDEMSYNC_CONFIG"])
        self.env = process_env(self.config, database_url)
        self.configure(config_text())

    def configure(self, text: str) -> None:
        self.config.write_text(text)

    def restart(self) -> None:
        self.stop()
        self.start()

    def post(self, source: str, delivery: Delivery) -> httpx.Response:
        return httpx.post(
            f"{self.base_url}/webhooks/{source}",
            content=delivery.body,
            headers=delivery.headers,
            timeout=15,
        )

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def backend_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One fresh migrated database per backend, for the whole module."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("partners-db") / "idemsync.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"idemsync_partners_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    pg_execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield f"{PG_SERVER}/{name}"
    pg_execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def partners(
    backend_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PartnerServer]:
    """``idemsync serve`` with one source per scheme, for the whole module."""
    server = PartnerServer(tmp_path_factory.mktemp("partners"), backend_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def db(backend_url: str) -> Iterator[Store]:
    store = Store(backend_url)
    yield store
    store.close()


def state_of(
    db: Store, source: str, kind: str, object_id: str
) -> dict[str, Any] | None:
    """The object's state in ``source``'s namespace (its name)."""
    state = db.state(kind, object_id, source)
    return None if state is None else {k: state[k] for k in ("status", "values")}


def assert_applied(
    response: httpx.Response, source: str, key: str, aggregate: tuple[str, str]
) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["outcome"] == "applied", answer
    assert (answer["source"], answer["key"]) == (source, key)
    assert (answer["aggregate"]["type"], answer["aggregate"]["id"]) == aggregate
    assert "idempotent-replayed" not in response.headers
    return answer


def assert_duplicate(
    response: httpx.Response, source: str, key: str, first: dict[str, Any]
) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["idempotent-replayed"] == "true"
    assert response.json() == {
        "outcome": "duplicate",
        "source": source,
        "key": key,
        "first": first,
    }


def assert_unauthorized(response: httpx.Response) -> None:
    """401 with the documented body, saying nothing about why."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "unauthorized", body
    assert set(body) <= {"error", "message"}, body
    assert "idempotent-replayed" not in response.headers
    for reason in REFUSAL_REASONS:
        assert reason not in response.text.lower(), f"401 leaks {reason!r}"
    for secret in SECRETS.values():
        assert secret not in response.text


# -- every scheme: applied, then duplicate ---------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_a_signed_delivery_is_applied_and_its_retry_is_a_duplicate(
    partners: PartnerServer, db: Store, source: str
) -> None:
    case, uid, now = CASES[source], new_uid(), int(time.time())
    payload, aggregate = case.payload(uid), case.aggregate(uid)
    # Sent 30 s after it was signed; its retry is signed again when it is sent
    # (where the scheme signs a time): same key and body, a new signature.
    first = case.deliver(payload, now - 30)
    retry = case.deliver(payload, now) if case.signs_time else first
    assert retry.headers != first.headers or not case.signs_time
    for delivery in (first, retry):
        library_accepts(source, delivery, case.secret())

    applied = partners.post(source, first)
    replayed = partners.post(source, retry)

    answer = assert_applied(applied, source, first.key, aggregate)
    assert_duplicate(replayed, source, first.key, answer)
    assert state_of(db, source, *aggregate) == case.state(uid)
    record = db.delivery(source, first.key)
    assert record is not None
    assert (record["payload"], record["answer"]) == (first.body, answer)


# -- tampered or signed with another secret: 401, nothing stored, reason only logged ---


def tampered(body: bytes, uid: int) -> list[bytes]:
    """The same JSON with a trailing newline; another object id."""
    return [body + b"\n", body.replace(str(uid).encode(), str(uid + 1).encode())]


@pytest.mark.parametrize("source", SIGNED)
def test_a_tampered_body_is_refused_and_the_reason_is_only_logged(
    partners: PartnerServer, db: Store, source: str
) -> None:
    case, uid, now = CASES[source], new_uid(), int(time.time())
    genuine = case.deliver(case.payload(uid), now)
    keys, offset = db.keys(), partners.log_size()

    for body in tampered(genuine.body, uid):
        assert body != genuine.body
        assert_unauthorized(
            partners.post(source, Delivery(genuine.key, body, genuine.headers))
        )

    assert db.keys() == keys
    assert state_of(db, source, *case.aggregate(uid + 1)) is None
    assert partners.log_since(offset).count(refusal_logged_line(source)) == 2
    # Nothing of the refusals was kept: the genuine delivery is a first one.
    assert_applied(
        partners.post(source, genuine), source, genuine.key, case.aggregate(uid)
    )


@pytest.mark.parametrize("source", SIGNED)
def test_a_delivery_signed_with_another_secret_is_refused(
    partners: PartnerServer, db: Store, source: str
) -> None:
    case, uid, now = CASES[source], new_uid(), int(time.time())
    assert case.secret_env is not None
    payload = case.payload(uid)
    forged = case.deliver(payload, now, secret=SECRET_MAKERS[case.secret_env]())
    keys, offset = db.keys(), partners.log_size()

    assert_unauthorized(partners.post(source, forged))

    assert db.keys() == keys
    assert state_of(db, source, *case.aggregate(uid)) is None
    assert refusal_logged_line(source) in partners.log_since(offset)
    genuine = case.deliver(payload, now)
    assert_applied(
        partners.post(source, genuine), source, genuine.key, case.aggregate(uid)
    )


def refusal_logged_line(source: str) -> str:
    return (
        f"refused delivery source={source!r} status=401 error=unauthorized "
        "detail=no matching signature"
    )


# -- the plugin mappings over the socket: ignored, invalid -----------------------------


def test_a_github_ping_is_acknowledged_as_ignored(partners: PartnerServer) -> None:
    body = json.dumps(
        {
            "zen": "Design for failure.",
            "hook_id": 292430182,
            "hook": {"type": "Repository", "id": 292430182, "events": ["issues"]},
            "repository": REPOSITORY,
            "sender": github_user("octocat", 1),
        }
    ).encode()
    key = str(uuid.uuid4())
    secret = SECRETS["GITHUB_WEBHOOK_SECRET"]
    ping = Delivery(key, body, github_signer("ping")(secret, key, body, 0))

    response = partners.post("github", ping)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "outcome": "ignored",
        "source": "github",
        "key": key,
        "reason": "no mapping for GitHub event 'ping'",
    }


def test_a_shopify_order_the_mapping_cannot_read_is_400_with_its_path(
    partners: PartnerServer, db: Store
) -> None:
    uid = new_uid()
    payload = shopify_order_created(uid, total_price=125.0)  # a number, not "125.00"
    delivery = CASES["shopify"].deliver(payload, int(time.time()))

    response = partners.post("shopify", delivery)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_payload"
    assert response.json()["path"] == "$.total_price"
    assert db.delivery("shopify", delivery.key) is None


# -- rotation --------------------------------------------------------------------------


def test_both_rotated_secrets_are_accepted_until_the_old_one_is_removed(
    partners: PartnerServer, db: Store
) -> None:
    case = CASES["rotated"]
    old, new = SECRETS["OLD"], SECRETS["NEW"]
    uids = [new_uid() for _ in range(4)]
    payloads = [case.payload(uid) for uid in uids]
    now = int(time.time())

    by_old = partners.post("rotated", case.deliver(payloads[0], now, old))
    by_new = partners.post("rotated", case.deliver(payloads[1], now, new))
    first_old = assert_applied(by_old, "rotated", payloads[0][0], order_of(uids[0]))
    first_new = assert_applied(by_new, "rotated", payloads[1][0], order_of(uids[1]))

    partners.configure(config_text(rotated=("NEW",)))
    try:
        partners.restart()
        offset, now = partners.log_size(), int(time.time())

        assert_unauthorized(
            partners.post("rotated", case.deliver(payloads[2], now, old))
        )
        applied = partners.post("rotated", case.deliver(payloads[3], now, new))
        assert_applied(applied, "rotated", payloads[3][0], order_of(uids[3]))
        # A retry must authenticate before it is answered from the record.
        assert_unauthorized(
            partners.post("rotated", case.deliver(payloads[0], now, old))
        )
        assert_duplicate(
            partners.post("rotated", case.deliver(payloads[1], now, new)),
            "rotated",
            payloads[1][0],
            first_new,
        )
        assert partners.log_since(offset).count(refusal_logged_line("rotated")) == 2
        assert state_of(db, "rotated", *order_of(uids[2])) is None
        kept = db.delivery("rotated", payloads[0][0])
        assert kept is not None and kept["answer"] == first_old
    finally:
        partners.configure(config_text())
        partners.restart()


# -- scheme none -----------------------------------------------------------------------


def test_the_unsigned_source_is_announced_loudly_at_start(
    partners: PartnerServer,
) -> None:
    log = partners.log_since(0)
    assert log.count(UNSIGNED_WARNING) == 1, log
    for source in SIGNED:
        assert f"source {source!r} accepts UNSIGNED" not in log
    # It accepts any request, but a delivery still needs its key.
    body = order_created(new_uid())
    response = httpx.post(
        f"{partners.base_url}/webhooks/unsigned", content=body, timeout=15
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "missing_key"


# -- idemsync config check, and serve on the same configuration ------------------------


def run_idemsync(
    directory: Path, args: list[str], text: str, *, without: str | None = None
) -> subprocess.CompletedProcess[str]:
    config = directory / "idemsync.toml"
    config.write_text(text)
    env = process_env(config, f"sqlite:///{directory / 'never' / 'idemsync.db'}")
    if without is not None:
        env.pop(without)
    return subprocess.run(
        [sys.executable, "-m", "idemsync", *args],
        env=env,
        cwd=directory,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


SOURCE_LINES = [
    "stdwh: scheme standard-webhooks, mapping standard",
    "svixsrc: scheme standard-webhooks, mapping standard (default)",
    "stripe: scheme stripe, mapping stripe",
    "github: scheme github, mapping tests.plugin_mappings:map_github",
    "shopify: scheme shopify, mapping shopify (default)",
    "billing: scheme hmac-sha256, mapping standard",
    "rotated: scheme standard-webhooks, mapping standard",
    "unsigned: scheme none, mapping standard",
]
"""What ``config check`` prints and ``serve`` logs for each source of
``config_text`` (then its namespace: ``namespace_line``): ``svixsrc`` names
no mapping and gets its scheme's."""


def namespace_line(line: str, why: str) -> str:
    """``line`` with its source's namespace: none names one, so each is in
    its own (``serve`` reads the store's pins; ``config check`` here has no
    store to read them from, and says so)."""
    return f"{line}, namespace {line.partition(':')[0]} ({why})"


def test_serve_logs_each_sources_scheme_and_mapping_once_at_start(
    partners: PartnerServer,
) -> None:
    records = [
        json.loads(line)
        for line in partners.log_since(0).splitlines()
        if line.startswith("{")
    ]
    described = [
        record
        for record in records
        if record["logger"] == "idemsync" and record["message"].startswith("source ")
    ]
    assert [record["message"] for record in described] == [
        f"source {namespace_line(line, 'its name')}" for line in SOURCE_LINES
    ]
    svix = described[1]
    assert (svix["level"], svix["source"], svix["scheme"]) == (
        "info",
        "svixsrc",
        "standard-webhooks",
    )
    assert (svix["mapping"], svix["mapping_is_default"]) == ("standard", True)
    assert svix["namespace"] == "svixsrc"


def test_config_check_builds_every_source_and_lists_them(tmp_path: Path) -> None:
    finished = run_idemsync(tmp_path, ["config", "check"], config_text())

    assert finished.returncode == 0, finished.stderr
    config = tmp_path / "idemsync.toml"
    assert finished.stdout.splitlines() == [
        f"{config}: ok; sources: {', '.join(SOURCES)}",
        *(
            namespace_line(line, "its name, unless the store pinned it")
            for line in SOURCE_LINES
        ),
        "privacy: no master key: personal fields are stored in clear (docs/privacy.md)",
    ]
    for secret in SECRETS.values():
        assert secret not in finished.stdout + finished.stderr


BROKEN = {
    "missing-secret": (
        config_text(),
        "NEW",
        "sources.rotated.secrets[1]: environment variable NEW is not set",
    ),
    "unsigned-without-mapping": (
        config_text().replace(
            'allow_unsigned = true\nmapping = "standard"\n', "allow_unsigned = true\n"
        ),
        None,
        "sources.unsigned.mapping: required for scheme none",
    ),
    "unimportable-mapping": (
        config_text(github_mapping="nope.module:fn"),
        None,
        "sources.github.mapping: cannot load 'nope.module:fn'",
    ),
}


@pytest.mark.parametrize("command", ["config-check", "serve"])
@pytest.mark.parametrize("broken", list(BROKEN))
def test_a_broken_source_stops_config_check_and_serve_with_exit_2(
    tmp_path: Path, broken: str, command: str
) -> None:
    text, without, message = BROKEN[broken]
    port = free_port()
    args = ["config", "check"] if command == "config-check" else serve_command(port)[3:]

    finished = run_idemsync(tmp_path, args, text, without=without)

    output = finished.stdout + finished.stderr
    assert finished.returncode == 2, output
    assert f"idemsync: configuration error: {message}" in finished.stderr, output
    for secret in SECRETS.values():
        assert secret not in output
    assert "Uvicorn running" not in output
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    assert not (tmp_path / "never").exists(), "stopped before touching the database"
