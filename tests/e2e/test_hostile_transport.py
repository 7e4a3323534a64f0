"""Hostile input where the transport matters (issue 7, item 3), against a
real ``idemsync serve`` (uvicorn, h11) over a socket, on both backends: a
100 MB body, slow bodies, clients that hang up, and request lines no HTTP
client library would send.

What uvicorn does by itself, and what idemsync adds (``web/webhooks.py``):

- uvicorn (h11) has no deadline for a request body, nor for the headers of a
  connection's first request (``--timeout-keep-alive`` only runs between
  requests); it limits the request line and headers to 16 KiB
  (``h11_max_incomplete_event_size``: a 400 before the app), and accepts only
  visible ASCII in the request target.
- After the app answers before the body is read, uvicorn keeps reading (and
  discarding) the rest to reuse the connection, unless the answer says
  ``Connection: close``: idemsync's 408 and 413 do, so a client sending
  100 MB is cut off after the answer.
- idemsync refuses a body over ``max_body_bytes`` with 413 before reading it
  (at once from ``Content-Length``; chunked, at the chunk that passes the
  limit), and one that has not arrived whole within
  ``[server] body_timeout_seconds`` with 408.
"""

from __future__ import annotations

import contextlib
import select
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


def test_a_client_that_never_finishes_its_headers_does_not_stop_others_being_served(
    server: Server, partner: Partner
) -> None:
    """uvicorn has no deadline for a first request's headers (README: put a
    proxy in front for that); such a connection costs a socket, not service."""
    idle = []
    try:
        for _ in range(20):
            sock = connect(server)
            sock.sendall(b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            idle.append(sock)
        request = partner.order_created("ord_beside")
        started = time.monotonic()
        response = httpx.post(
            f"{server.base_url}/webhooks/acme",
            content=request.body,
            headers=request.headers,
            timeout=5,
        )
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 1.0
    finally:
        for sock in idle:
            sock.close()


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
    404 from idemsync, or 400 from uvicorn (h11) for what is not HTTP."""
    request = partner.order_created("ord_trick")
    for target in TARGETS:
        with connect(server) as sock:
            sock.sendall(head(target, request) + request.body)
            answer = read_answer(sock)
        assert answer.status in (400, 404), (target[:60], answer.status, answer.body)
    assert store.count("deliveries") == 0
    assert httpx.get(f"{server.base_url}/healthz", timeout=5).status_code == 200
