"""Hostile input where the transport matters (issue 7, item 3; issue 13,
items 3 and 4), against a real ``idemsync serve`` over a socket: a 100 MB
body, slow bodies, clients that hang up, request lines no HTTP client
library would send, oversized heads and heads that never end.

What uvicorn does by itself, and what idemsync adds (``web/webhooks.py``,
``web/transport.py``):

- uvicorn has no deadline for a request body, nor for a request line and
  headers (``--timeout-keep-alive`` only runs between requests, until the
  first byte), nor a limit of its own on header count or size (h11 bounds
  its buffer at 16 KiB, llhttp not at all); its own 400 is text/plain.
- After the app answers before the body is read, uvicorn keeps reading (and
  discarding) the rest to reuse the connection, unless the answer says
  ``Connection: close``: idemsync's 408 and 413 do, so a client sending
  100 MB is cut off after the answer.
- idemsync refuses a body over ``max_body_bytes`` with 413 before reading it
  (at once from ``Content-Length``; chunked, at the chunk that passes the
  limit), and one that has not arrived whole within
  ``[server] body_timeout_seconds`` with 408.
- idemsync's protocols (both parsers) refuse a head over ``[server]
  max_headers`` or ``max_header_bytes`` with 431 as it arrives, close a
  connection whose head is not complete within ``header_timeout_seconds``
  (408 if it had begun one), and answer every error of their own in JSON.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import select
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import CONFIG, Server
from tests.partner import Partner, Request
from tests.store import Store
from web.limits import HeadLimits

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
BODY_TIMEOUT = 2.0


@pytest.fixture
def server(tmp_path: Path, database_url: str, secret: str) -> Iterator[Server]:
    """``idemsync serve`` whose body deadline is ``BODY_TIMEOUT`` (the body
    limit is the default 1 MiB)."""
    started = Server(tmp_path, database_url, secret)
    Path(started.env["IDEMSYNC_CONFIG"]).write_text(
        f"{CONFIG}\n[server]\nbody_timeout_seconds = {BODY_TIMEOUT}\n"
    )
    started.start()
    yield started
    started.stop()


# --- raw HTTP/1.1 --------------------------------------------------------------


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(
    target: str | bytes,
    request: Request,
    *,
    length: int | None = None,
    chunked: bool = False,
) -> bytes:
    """The request line and headers of ``request`` POSTed to ``target``."""
    raw_target = target.encode() if isinstance(target, str) else target
    lines = [b"POST " + raw_target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [f"{name}: {value}".encode() for name, value in request.headers.items()]
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    else:
        size = len(request.body) if length is None else length
        lines.append(f"Content-Length: {size}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Answer:
    """A response read off the socket: status, headers (lower-case), body."""

    def __init__(self, raw: bytes) -> None:
        header, _, self.body = raw.partition(b"\r\n\r\n")
        first, *rest = header.decode("latin-1").split("\r\n")
        self.status = int(first.split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in rest)
        }


def read_answer(sock: socket.socket, timeout: float = 10.0) -> Answer:
    """One whole response (its body by Content-Length)."""
    sock.settimeout(timeout)
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before an answer: {raw!r}")
        raw += chunk
    answer = Answer(raw)
    wanted = int(answer.headers.get("content-length", "0"))
    while len(answer.body) < wanted:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer.body += chunk
    return answer


def readable(sock: socket.socket, seconds: float = 0.0) -> bool:
    return bool(select.select([sock], [], [], seconds)[0])


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """The server closed its side: EOF (or a reset) on reading."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM): grows if anything ever held
    the body, even briefly."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def refused_total(server: Server, reason: str) -> float:
    """``idemsync_requests_refused_total`` of ``acme`` and ``reason``."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "idemsync_requests_refused_total" and sample.labels == {
                "source": "acme",
                "reason": reason,
            }:
                return sample.value
    raise AssertionError(f"no refused series for {reason}")


# --- a 100 MB body ---------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_100_mb_body_is_answered_413_and_cut_off_long_before_it_is_sent_whole(
    server: Server, partner: Partner, store: Store, framing: str
) -> None:
    request = partner.order_created("ord_big")
    chunk = b"x" * MiB
    before = peak_rss_bytes(server.pid)
    chunked = framing == "chunked"
    sent, answer, cut_off = 0, None, False
    with connect(server) as sock:
        sock.sendall(head("/webhooks/acme", request, length=100 * MiB, chunked=chunked))
        try:
            while sent < 100 * MiB:
                if chunked:
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                else:
                    sock.sendall(chunk)
                sent += len(chunk)
                if answer is None and readable(sock, 0.02):
                    answer = read_answer(sock)
                    sent_at_answer = sent
        except (BrokenPipeError, ConnectionResetError):
            cut_off = True
        if answer is None:
            answer = read_answer(sock)
            sent_at_answer = sent
        closed = cut_off or closed_by_server(sock)

    assert answer.status == 413, answer.body
    assert answer.headers["connection"] == "close"
    assert b'"payload_too_large"' in answer.body
    # The answer came while the client was still sending (a chunked body is
    # read up to the 1 MiB limit, no further) ...
    assert sent_at_answer <= 8 * MiB, sent_at_answer
    # ... and the server hung up rather than read (and drop) the rest.
    assert closed
    assert sent < 100 * MiB, "the server read all 100 MB"
    assert peak_rss_bytes(server.pid) - before < 20 * MiB
    assert store.count("deliveries") == 0
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200


# --- slow bodies -------------------------------------------------------------------


def send_slowly(
    server: Server, request: Request, stop: threading.Event, chunked: bool = False
) -> tuple[Answer, float, bool]:
    """Headers at once, then a byte every 0.2 s (the body would take
    minutes): the answer, after how long, and whether the server closed."""
    with connect(server) as sock:
        sock.sendall(head("/webhooks/acme", request, chunked=chunked))
        started = time.monotonic()
        for byte in request.body:
            if stop.is_set() or readable(sock):
                break
            piece = bytes([byte])
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"1\r\n" + piece + b"\r\n" if chunked else piece)
            time.sleep(0.2)
        answer = read_answer(sock)
        return answer, time.monotonic() - started, closed_by_server(sock)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_slow_bodies_are_answered_408_within_the_deadline_while_others_are_served(
    server: Server, partner: Partner, store: Store, framing: str
) -> None:
    slow = [partner.order_created(f"ord_slow_{n}") for n in range(5)]
    stop = threading.Event()
    with ThreadPoolExecutor(len(slow)) as pool:
        pending = [
            pool.submit(send_slowly, server, request, stop, framing == "chunked")
            for request in slow
        ]
        time.sleep(0.3)  # all five connected and trickling
        fast = partner.order_created("ord_fast")
        started = time.monotonic()
        with httpx.Client(base_url=server.base_url, timeout=5) as client:
            served = client.post(
                "/webhooks/acme", content=fast.body, headers=fast.headers
            )
            health = client.get("/healthz")
        waited = time.monotonic() - started
        try:
            answers = [future.result(timeout=BODY_TIMEOUT + 10) for future in pending]
        finally:
            stop.set()

    assert served.status_code == 200, served.text
    assert health.status_code == 200
    assert waited < BODY_TIMEOUT, f"the others waited {waited:.2f} s"
    for answer, seconds, closed in answers:
        assert answer.status == 408, answer.body
        assert b'"body_timeout"' in answer.body
        assert answer.headers["connection"] == "close"
        assert BODY_TIMEOUT - 0.1 <= seconds < BODY_TIMEOUT + 3.0, seconds
        assert closed
    assert store.keys() == {("acme", fast.key)}
    assert refused_total(server, "body_timeout") == len(slow)


# --- broken connections ----------------------------------------------------------


def test_a_client_that_hangs_up_mid_body_leaves_nothing_and_no_error_in_the_log(
    server: Server, partner: Partner, store: Store
) -> None:
    request = partner.order_created("ord_gone")
    with connect(server) as sock:
        sock.sendall(head("/webhooks/acme", request) + request.body[:20])
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while refused_total(server, "client_disconnected") < 1:
        assert time.monotonic() < deadline, "the hang-up was never counted"
        time.sleep(0.05)

    assert store.count("deliveries") == 0
    assert refused_total(server, "internal_error") == 0
    log = server.log_path.read_text()
    assert "client_disconnected" in log
    assert "Traceback" not in log
    assert '"level":"error"' not in log
    # The same delivery sent whole is a first delivery.
    response = httpx.post(
        f"{server.base_url}/webhooks/acme",
        content=request.body,
        headers=request.headers,
        timeout=5,
    )
    assert response.json()["outcome"] == "applied"


def test_a_client_that_hangs_up_after_its_body_gets_the_first_answer_on_retry(
    server: Server, partner: Partner, store: Store
) -> None:
    """The delivery was decided (or not) whole; the partner's retry is then a
    duplicate of that decision, or the first delivery: never both, never
    half."""
    request = partner.order_created("ord_hangup")
    with connect(server) as sock:
        sock.sendall(head("/webhooks/acme", request) + request.body)
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
    time.sleep(0.5)
    retry = httpx.post(
        f"{server.base_url}/webhooks/acme",
        content=request.body,
        headers=request.headers,
        timeout=5,
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["outcome"] in ("applied", "duplicate")
    assert store.keys() == {("acme", request.key)}
    assert store.count("idemsync_events") == 3  # Tracked, Created, Receipt.Issued


# --- request lines no client library sends ------------------------------------------


TARGETS = [
    b"/webhooks/../webhooks/acme",
    b"/webhooks/./acme",
    b"/webhooks//acme",
    b"/webhooks/%2e%2e/webhooks/acme",
    b"/webhooks/x%2f..%2facme",
    b"/webhooks/acme%00",
    b"/webhooks/%00",
    b"/webhooks/acme%0d%0aX-Injected:%201",
    b"/webhooks/ac%E2%80%8Bme",
    b"/webhooks/%EF%BD%81cme",
    b"/webhooks/%ff",
    b"/webhooks/" + b"a" * 10_000,
    b"/webhooks/" + b"a" * 20_000,  # past h11's 16 KiB: uvicorn's 400
    "/webhooks/\u0430cme".encode(),  # raw UTF-8 in the target: h11 400
    b"/webhooks/acme\x00",
    b"/webhooks/acme\x7f",
    b"http://127.0.0.1/webhooks/../acme",
    b"*",
]


def test_a_request_line_with_path_tricks_is_refused_and_reaches_no_source(
    server: Server, partner: Partner, store: Store
) -> None:
    """Signed for ``acme``: had one been routed there, it would be applied.
    404 from idemsync, or 400 from the parser for what is not HTTP: JSON
    either way."""
    request = partner.order_created("ord_trick")
    for target in TARGETS:
        with connect(server) as sock:
            sock.sendall(head(target, request) + request.body)
            answer = read_answer(sock)
        assert answer.status in (400, 404), (target[:60], answer.status, answer.body)
        assert answer.headers["content-type"] == "application/json", target[:60]
    assert store.count("deliveries") == 0
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200


# --- request heads: limits and deadline (issue 13, items 3 and 4) -------------------

HEAD_TIMEOUT = 1.0
HEADS_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
DEFAULTS = HeadLimits()
HALF_A_HEAD = b"POST /webhooks/acme HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@pytest.fixture(scope="module", params=["httptools", "h11"])
def guarded(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
) -> Iterator[Server]:
    """``idemsync serve --http PARSER`` with a header deadline of
    ``HEAD_TIMEOUT`` (the body deadline 5 s, the header limits the
    defaults), one per parser for this section's tests. On SQLite only:
    what is tested here happens in the protocol, before the app and its
    store (``tests/integration/test_header_limits.py`` runs the app's
    check on both backends)."""
    directory = tmp_path_factory.mktemp(f"heads-{request.param}")
    database = directory / "idemsync.db"
    shutil.copy(sqlite_template, database)
    started = Server(
        directory, f"sqlite:///{database}", HEADS_SECRET, http=request.param
    )
    Path(started.env["IDEMSYNC_CONFIG"]).write_text(
        f"{CONFIG}\n[server]\nheader_timeout_seconds = {HEAD_TIMEOUT}\n"
        "body_timeout_seconds = 5\n"
    )
    started.start()
    yield started
    started.stop()


@pytest.fixture
def heads_partner() -> Partner:
    return Partner(HEADS_SECRET)


def stored(server: Server) -> int:
    store = Store(server.env["IDEMSYNC_DATABASE_URL"])
    try:
        return store.count("deliveries")
    finally:
        store.close()


def with_headers(request: Request, extra: dict[str, str]) -> Request:
    return dataclasses.replace(request, headers={**request.headers, **extra})


def header_bytes(request: Request) -> int:
    """Header names and values of ``head(..., request)``, as the limit counts."""
    lines = head("/webhooks/acme", request).split(b"\r\n")[1:-2]
    return sum(len(line) - 2 for line in lines)  # each line minus ": "


def send_head(server: Server, request: Request) -> tuple[Answer, bool]:
    """``request`` (head and body) on a new connection: the answer, and
    whether the server then closed the connection (at once: before the
    header deadline would)."""
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head("/webhooks/acme", request) + request.body)
        answer = read_answer(sock)
        return answer, closed_by_server(sock, timeout=HEAD_TIMEOUT / 2)


def assert_json_error(answer: Answer, status: int, error: str) -> str:
    """``answer`` is ``status`` with a JSON ``error`` and closes the
    connection; its message."""
    assert answer.status == status, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    body = json.loads(answer.body)
    assert body["error"] == error, body
    message: str = body["message"]
    return message


def post_fast(server: Server, request: Request) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{server.base_url}/webhooks/acme",
        content=request.body,
        headers=request.headers,
        timeout=5,
    )
    return response, time.monotonic() - started


def test_a_1_mb_header_is_refused_431_as_it_arrives_and_others_are_served(
    guarded: Server, heads_partner: Partner
) -> None:
    request = heads_partner.order_created("ord_1mb")
    before = refused_total(guarded, "headers_too_large")

    answer, closed = send_head(guarded, with_headers(request, {"X-Big": "a" * MiB}))

    message = assert_json_error(answer, 431, "headers_too_large")
    # Refused on the bytes of a head still incomplete, not after the 1 MB
    # header was parsed whole (that would be "header names and values ...").
    assert message == f"request line and headers over {DEFAULTS.wire_bytes} bytes"
    assert closed
    assert refused_total(guarded, "headers_too_large") == before + 1
    assert stored(guarded) == 0
    response, _ = post_fast(guarded, request)
    assert response.json()["outcome"] == "applied", response.text


def test_3000_small_headers_are_refused_431(
    guarded: Server, heads_partner: Partner
) -> None:
    request = heads_partner.order_created("ord_3000")
    many = {f"X-H{n}": "v" for n in range(3000)}
    before = stored(guarded)

    answer, closed = send_head(guarded, with_headers(request, many))

    assert_json_error(answer, 431, "headers_too_large")
    assert closed
    assert stored(guarded) == before


@pytest.mark.parametrize("bound", ["bytes", "count"])
def test_a_head_at_the_limit_is_served_and_one_more_is_refused(
    guarded: Server, heads_partner: Partner, bound: str
) -> None:
    def at_limit(order_id: str, over: int) -> Request:
        request = heads_partner.order_created(order_id)
        if bound == "count":
            room = DEFAULTS.max_headers - len(request.headers) - 2  # Host, C-L
            return with_headers(request, {f"X-H{n}": "v" for n in range(room + over)})
        padded = with_headers(request, {"X-Pad": ""})
        room = DEFAULTS.max_header_bytes - header_bytes(padded)
        return with_headers(request, {"X-Pad": "a" * (room + over)})

    within, beyond = at_limit(f"ord_{bound}_in", 0), at_limit(f"ord_{bound}_out", 1)
    if bound == "bytes":
        assert header_bytes(within) == DEFAULTS.max_header_bytes
    before = stored(guarded)

    served, _ = send_head(guarded, within)
    refused, closed = send_head(guarded, beyond)

    assert served.status == 200, served.body
    assert json.loads(served.body)["outcome"] == "applied"
    message = assert_json_error(refused, 431, "headers_too_large")
    expected = {"bytes": "over 16384 bytes", "count": "more than 100 headers"}
    assert expected[bound] in message
    assert closed
    assert stored(guarded) == before + 1


def test_50_half_heads_are_closed_after_the_deadline_while_others_are_served(
    guarded: Server, heads_partner: Partner
) -> None:
    slow: list[tuple[socket.socket, float]] = []
    try:
        for _ in range(50):
            sock = connect(guarded)
            sock.sendall(HALF_A_HEAD)
            slow.append((sock, time.monotonic()))
        response, waited = post_fast(guarded, heads_partner.order_created("ord_beside"))
        assert response.status_code == 200, response.text
        assert waited < HEAD_TIMEOUT / 2, f"the honest client waited {waited:.2f} s"

        for sock, sent_at in slow:
            answer = read_answer(sock, timeout=HEAD_TIMEOUT + 5)
            after = time.monotonic() - sent_at
            assert_json_error(answer, 408, "header_timeout")
            assert closed_by_server(sock, timeout=1)
            assert after >= HEAD_TIMEOUT - 0.1, after
        last = time.monotonic() - slow[-1][1]
        assert last < HEAD_TIMEOUT + 2, f"the last closed after {last:.2f} s"
    finally:
        for sock, _ in slow:
            sock.close()


def test_a_malformed_request_line_or_header_is_a_json_400(guarded: Server) -> None:
    for raw in (
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        with connect(guarded) as sock:
            sock.sendall(raw)
            answer = read_answer(sock)
            assert_json_error(answer, 400, "bad_request")
            assert closed_by_server(sock), raw
    assert httpx.get(f"{guarded.base_url}/healthz", timeout=5).status_code == 200


def silent_close_after(sock: socket.socket, since: float) -> float:
    """Seconds from ``since`` to the server's close, which sends nothing."""
    sock.settimeout(HEAD_TIMEOUT + 5)
    assert sock.recv(65536) == b"", "an idle connection was sent something"
    return time.monotonic() - since


def test_an_idle_connection_is_closed_at_the_deadline_without_an_answer(
    guarded: Server,
) -> None:
    """Fresh, or kept alive after an answer: closed after the deadline, not
    uvicorn's 5 s keep-alive, and sent nothing (no request to answer)."""
    with connect(guarded) as fresh:
        seconds = silent_close_after(fresh, time.monotonic())
        assert HEAD_TIMEOUT - 0.1 <= seconds < HEAD_TIMEOUT + 1.5, seconds
    with connect(guarded) as kept:
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(kept).status == 200
        seconds = silent_close_after(kept, time.monotonic())
        assert HEAD_TIMEOUT - 0.1 <= seconds < HEAD_TIMEOUT + 1.5, seconds


def test_on_a_kept_alive_connection_the_deadline_runs_from_the_last_answer(
    guarded: Server,
) -> None:
    """Half a head sent late in the deadline still has only the rest of it:
    a 408 one deadline after the answer (1 s), not after the bytes (1.8 s)."""
    with connect(guarded) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock).status == 200
        answered = time.monotonic()
        time.sleep(HEAD_TIMEOUT * 0.8)
        sock.sendall(HALF_A_HEAD)
        answer = read_answer(sock, timeout=HEAD_TIMEOUT + 5)
        seconds = time.monotonic() - answered
        assert_json_error(answer, 408, "header_timeout")
        assert HEAD_TIMEOUT - 0.1 <= seconds < HEAD_TIMEOUT + 0.6, seconds


def test_a_body_may_take_longer_than_the_header_deadline(
    guarded: Server, heads_partner: Partner
) -> None:
    """The deadline stops when the head is complete: the body has
    ``body_timeout_seconds`` (5 s here)."""
    request = heads_partner.order_created("ord_slow_body")
    size = -(-len(request.body) // 4)
    pieces = [request.body[n : n + size] for n in range(0, len(request.body), size)]
    started = time.monotonic()
    with connect(guarded) as sock:
        sock.sendall(head("/webhooks/acme", request))
        for piece in pieces:
            time.sleep(HEAD_TIMEOUT / 2)
            sock.sendall(piece)
        answer = read_answer(sock)
    assert time.monotonic() - started > HEAD_TIMEOUT * 1.5
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["outcome"] == "applied"
