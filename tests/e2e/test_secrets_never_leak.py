"""Secrets and tokens never in logs, errors or metrics (issue 7, item 5).

A full run against a real ``idemsync serve`` (debug log level) on each
backend: every partner scheme of ``test_partner_schemes`` with its own
secret, a rotated source accepting two, deliveries signed right, retried,
tampered with and signed with a wrong secret; bearer tokens of each role,
wrong and malformed ones on every ``/views``, ``/audit`` and ``/admin``
route, and every token sent where it does not belong, in the query string
(``?token=``, ``?access_token=``, bare), on every route and on a webhook;
``/metrics`` with and without a token, the dashboard, the console and the
API reference with their files, the console's own requests (``/auth/me``,
the delivery log's filters),
the open endpoints, and a 503 forced by a locked store. Then the CLI:
``config check``, ``tokens list``, ``projections status``, ``deliveries
show``.

Everything the server wrote (stdout and stderr), every answer's status line,
headers and body, the scrape and the CLI's output are searched for every
configured secret in every form (as configured; the base64 after ``whsec_``;
the key bytes as hex and as base64) and every token (as sent, without its
``idm_`` prefix, and its SHA-256, which the configuration holds).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets as random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import tests.server_process as harness
from tests.e2e.test_partner_schemes import (
    CASES,
    SECRETS,
    PartnerServer,
    config_text,
    new_uid,
)
from tests.store import Store

pytestmark = pytest.mark.e2e

TOKENS = {
    role: f"idm_{random.token_urlsafe(32)}" for role in ("reader", "auditor", "admin")
}
WRONG = [
    f"idm_{random.token_urlsafe(32)}",  # well formed, not configured
    random.token_hex(32),
]
ROLE_OF = {"/views": "reader", "/audit": "auditor", "/admin": "admin"}


def secret_forms(secret: str) -> set[str]:
    """Every way a secret could show: as configured, and its key bytes."""
    forms = {secret}
    keys = [secret.encode()]
    if secret.startswith("whsec_"):
        encoded = secret.removeprefix("whsec_")
        forms.add(encoded)
        with suppress(binascii.Error):
            keys.append(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    for key in keys:
        forms.add(key.hex())
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(key).decode()
            forms.update({text, text.rstrip("=")})
    return {form for form in forms if len(form) >= 16}


def token_forms(token: str) -> set[str]:
    return {
        token,
        token.removeprefix("idm_"),
        hashlib.sha256(token.encode()).hexdigest(),
    }


def config(tokens: dict[str, str]) -> str:
    tables = "".join(
        f'\n[tokens.team-{role}]\nrole = "{role}"\n'
        f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        for role, token in tokens.items()
    )
    text = config_text().replace(
        "lock_timeout_seconds = 5.0", "lock_timeout_seconds = 1.0"
    )
    return text + tables


class Recorder:
    """Sends requests and keeps every answer as text (status, headers, body)."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30)
        self.seen: list[str] = []

    def __call__(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, url, **kwargs)
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        self.seen.append(
            f"{method} {url} -> {response.status_code}\n{headers}\n\n{response.text}"
        )
        return response

    def text(self) -> str:
        return "\n\n".join(self.seen)


@contextmanager
def locked_store(url: str) -> Iterator[None]:
    """Another transaction holding the delivery log: writers (SQLite) or
    every reader (PostgreSQL) time out after ``lock_timeout_seconds``."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    with psycopg.connect(url) as pg:
        pg.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            pg.rollback()


@pytest.fixture
def debug_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """``idemsync serve --log-level debug``: the most a server ever logs."""
    plain = harness.serve_command

    def debug(
        port: int, workers: int = 1, *, log_level: str | None = None, **more: Any
    ) -> list[str]:
        return plain(port, workers, log_level="debug", **more)

    monkeypatch.setattr(harness, "serve_command", debug)


def deliver_every_scheme(send: Recorder) -> list[tuple[str, str]]:
    """Each source: signed (2xx), retried (duplicate), tampered with and
    signed with a wrong secret (401); the rotated one with both secrets.
    The (source, key) of each delivery applied."""
    applied = []
    now = int(time.time())
    for source, case in CASES.items():
        signers = [None, SECRETS["NEW"]] if source == "rotated" else [None]
        for secret in signers:
            payload = case.payload(new_uid())
            delivery = case.deliver(payload, now, secret)
            for _ in range(2):
                answer = send(
                    "POST",
                    f"/webhooks/{source}",
                    content=delivery.body,
                    headers=delivery.headers,
                )
                assert answer.status_code in (200, 202), (source, answer.text)
            applied.append((source, delivery.key))
        if case.secret_env is None:
            continue
        payload = case.payload(new_uid())
        wrong = case.deliver(
            payload, now, "whsec_" + base64.b64encode(b"w" * 24).decode()
        )
        tampered = case.deliver(payload, now)
        for body, headers in (
            (wrong.body, wrong.headers),
            (tampered.body + b" ", tampered.headers),
        ):
            answer = send("POST", f"/webhooks/{source}", content=body, headers=headers)
            assert answer.status_code == 401, (source, answer.text)
    return applied


def guarded_urls(send: Recorder, source: str, key: str) -> list[tuple[str, str]]:
    """(method, url) of every guarded route, with real identifiers."""
    reader = {"authorization": f"Bearer {TOKENS['reader']}"}
    deadline = time.monotonic() + 20
    while not (orders := send("GET", "/views/orders", headers=reader).json()["items"]):
        assert time.monotonic() < deadline, "the orders projection never caught up"
        time.sleep(0.1)
    order_id = orders[0]["order_id"]
    return [
        ("GET", "/views/orders"),
        ("GET", f"/views/orders/{order_id}"),
        ("GET", "/views/customers/cus_1"),
        ("GET", "/views/revenue"),
        ("GET", "/views/sources"),
        ("GET", "/auth/me"),
        ("GET", "/audit/deliveries"),
        # What the console asks when an auditor filters the log.
        ("GET", f"/audit/deliveries?key={key}&object={order_id}&limit=50"),
        ("GET", "/audit/deliveries?contains=order&outcome=applied&source=x"),
        ("GET", f"/audit/deliveries/{source}/{key}"),
        ("GET", f"/audit/aggregates/order/{order_id}/events"),
        ("GET", f"/audit/aggregates/order/{order_id}/chain"),
        ("GET", f"/audit/aggregates/order/{order_id}"),
        ("GET", "/audit/events"),
        ("GET", "/admin/projections"),
        ("GET", "/admin/projections/orders/rebuild"),
        ("POST", "/admin/projections/orders/rebuild?verify=1&dry_run=1"),
        ("POST", f"/admin/replay?source={source}&dry_run=1"),
    ]


def every_token_on_every_route(send: Recorder, routes: list[tuple[str, str]]) -> None:
    presented = [
        *(f"Bearer {token}" for token in TOKENS.values()),
        *(f"Bearer {token}" for token in WRONG),
        f"Basic {TOKENS['admin']}",
        f"Bearer {TOKENS['admin']} extra",
        f"Bearer {hashlib.sha256(TOKENS['admin'].encode()).hexdigest()}",
        f"bearer {TOKENS['reader']}{TOKENS['admin']}",
    ]
    statuses = set()
    for method, url in routes:
        for authorization in [None, *presented]:
            headers = {} if authorization is None else {"authorization": authorization}
            for accept in ("application/json", "application/x-ndjson"):
                answer = send(method, url, headers={**headers, "accept": accept})
                statuses.add(answer.status_code)
                assert answer.status_code < 500 or answer.status_code == 503, (
                    answer.text
                )
    assert {200, 401, 403} <= statuses, statuses


def tokens_in_query_strings(send: Recorder, routes: list[tuple[str, str]]) -> None:
    """Every token in the query string of every route: refused (no bearer
    header), and never logged. The answers are kept (not the URLs sent,
    which hold the tokens by design)."""
    everywhere = [
        *routes,
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/nowhere"),
        ("POST", "/webhooks/stdwh"),
    ]
    for method, url in everywhere:
        path, _, query = url.partition("?")
        for token in [*TOKENS.values(), *WRONG]:
            for misplaced in (
                f"token={token}",
                f"access_token={token}",
                token,
                f"limit=5&token={token}",
            ):
                full = f"{path}?{'&'.join(filter(None, (query, misplaced)))}"
                answer = send.client.request(method, full)
                assert answer.status_code in (200, 401, 404), (method, path)
                headers = "\n".join(
                    f"{k}: {v}" for k, v in answer.headers.multi_items()
                )
                send.seen.append(
                    f"{method} {path}?<tokens>\n{headers}\n\n{answer.text}"
                )


def open_endpoints(send: Recorder) -> None:
    for url in ("/healthz", "/readyz", "/openapi.json", "/metrics"):
        assert send("GET", url).status_code == 200, url
    send("GET", "/metrics", headers={"authorization": f"Bearer {TOKENS['reader']}"})
    send("GET", "/metrics", headers={"authorization": f"Bearer {WRONG[0]}"})
    for url in ("/dashboard", "/console", "/docs"):
        page = send("GET", url)
        assert page.status_code == 200
        assets = set(re.findall(r'(?:src|href)="/?(static/[^"]+)"', page.text))
        assert assets, f"{url} loads no file"
        for asset in sorted(assets):
            assert send("GET", f"/{asset}").status_code == 200, asset
    send("GET", "/nowhere", headers={"authorization": f"Bearer {TOKENS['admin']}"})


def forced_503(send: Recorder, database_url: str) -> None:
    case = CASES["stdwh"]
    delivery = case.deliver(case.payload(new_uid()), int(time.time()))
    with locked_store(database_url):
        answer = send(
            "POST", "/webhooks/stdwh", content=delivery.body, headers=delivery.headers
        )
    assert answer.status_code == 503, answer.text
    assert "retry-after" in answer.headers


def run_cli(server: PartnerServer, *args: str) -> str:
    finished = subprocess.run(
        [sys.executable, "-m", "idemsync", *args],
        env=server.env,
        cwd=server.directory,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return f"$ idemsync {' '.join(args)}\n{finished.stdout}{finished.stderr}"


def test_no_secret_and_no_token_appears_in_any_log_answer_metric_or_cli_output(
    tmp_path: Path, database_url: str, debug_serve: None
) -> None:
    server = PartnerServer(tmp_path, database_url)
    server.configure(config(TOKENS))
    server.start()
    send = Recorder(server.base_url)
    try:
        applied = deliver_every_scheme(send)
        routes = guarded_urls(send, *applied[0])
        every_token_on_every_route(send, routes)
        tokens_in_query_strings(send, routes)
        open_endpoints(send)
        forced_503(send, database_url)
        metrics = send("GET", "/metrics").text
        cli = [
            run_cli(server, "config", "check"),
            run_cli(server, "tokens", "list"),
            run_cli(server, "projections", "status"),
            run_cli(server, "deliveries", "show", *applied[0]),
        ]
    finally:
        send.client.close()
        server.stop()
    log = server.log_path.read_text(errors="replace")

    # What is searched is the real thing: the log, the refusals, the scrape.
    assert "refused delivery" in log and "refused request" in log
    assert "?token=<redacted>" in log and "?access_token=<redacted>" in log
    assert "store_unavailable" in log
    assert "idemsync_deliveries_total" in metrics
    assert "team-auditor" in cli[1] and "auditor" in cli[1]
    haystack = "\n".join([log, send.text(), metrics, *cli])
    lowered = haystack.lower()
    leaks = []
    for name, secret in SECRETS.items():
        for form in secret_forms(secret):
            if form in haystack or form.lower() in lowered:
                leaks.append(f"secret {name} as {form[:8]}…")
    for role, token in TOKENS.items():
        for form in token_forms(token):
            if form in haystack or form.lower() in lowered:
                leaks.append(f"token of {role} as {form[:8]}…")
    for token in WRONG:
        if token in haystack:
            leaks.append(f"a presented wrong token {token[:8]}…")
    assert not leaks, leaks
    store = Store(database_url)
    try:
        assert store.count("deliveries") >= len(applied)
    finally:
        store.close()
