"""Pre-signed requests: ``order.created`` bodies of new orders, signed as
a Standard Webhooks sender signs them, written into one file per wrk thread
before any timing; and the untimed sending of deliveries to repeat later as
duplicates."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infrastructure.schemes.standard_webhooks import sign

SOURCE = "bench"
SECRET = "whsec_aWRlbXN5bmMtYmVuY2gtc2VjcmV0LWtleQ=="
"""A fixed, public key: the bench signs with it, its server checks with it."""
TOLERANCE_SECONDS = 3600


def unique_body(tag: str, index: int, personal: bool = False) -> bytes:
    """An ``order.created`` of a new order (and a customer per four orders);
    ``personal``: every fourth is instead the ``customer.upserted`` of that
    customer, with an email, a name, a phone and an address (the fields a
    master key seals)."""
    if personal and index % 4 == 0:
        return customer_body(f"cus_{tag}_{index // 4:07d}")
    return json.dumps(
        {
            "type": "order.created",
            "timestamp": "2026-11-02T09:00:00+00:00",
            "data": {
                "order_id": f"ord_{tag}_{index:07d}",
                "customer_id": f"cus_{tag}_{index // 4:07d}",
                "currency": "EUR",
                "total_cents": 4200 + index % 1000,
                "sequence": 1,
            },
        },
        separators=(",", ":"),
    ).encode()


def customer_body(customer_id: str) -> bytes:
    return json.dumps(
        {
            "type": "customer.upserted",
            "timestamp": "2026-11-02T09:00:00+00:00",
            "data": {
                "customer_id": customer_id,
                "email": f"{customer_id}@example.org",
                "name": f"Customer {customer_id}",
                "phone": "+15550001111",
                "address": {"line1": "1 Main Street", "city": "Springfield"},
            },
        },
        separators=(",", ":"),
    ).encode()


def raw_request(host: str, key: str, body: bytes, timestamp: int) -> bytes:
    """The whole HTTP/1.1 request a Standard Webhooks sender sends."""
    head = (
        f"POST /webhooks/{SOURCE} HTTP/1.1\r\n"
        f"host: {host}\r\n"
        "content-type: application/json\r\n"
        f"webhook-id: {key}\r\n"
        f"webhook-timestamp: {timestamp}\r\n"
        f"webhook-signature: {sign(SECRET, key, timestamp, body)}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Batch:
    """Pre-signed requests, one file per wrk thread."""

    tag: str
    count: int
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def pattern(self) -> str:
        """The files' path with ``%d`` for the wrk thread."""
        return str(self.files[0])[: -len("-0.req")] + "-%d.req"


def write_requests(
    directory: Path, tag: str, requests: Sequence[bytes], threads: int
) -> list[Path]:
    """``requests`` dealt round-robin into one file per thread; each record is
    its length in decimal, a newline, and the raw request."""
    files = []
    for thread in range(threads):
        path = directory / f"{tag}-{thread}.req"
        with path.open("wb") as out:
            for request in requests[thread::threads]:
                out.write(b"%d\n" % len(request))
                out.write(request)
        files.append(path)
    return files


def unique_batch(
    directory: Path,
    host: str,
    tag: str,
    count: int,
    threads: int,
    personal: bool = False,
) -> Batch:
    now = int(time.time())
    bodies = [
        (f"msg_{tag}_{i:07d}", unique_body(tag, i, personal)) for i in range(count)
    ]
    requests = [raw_request(host, key, body, now) for key, body in bodies]
    return Batch(tag, count, bodies, write_requests(directory, tag, requests, threads))


def retry_batch(directory: Path, host: str, sent: Batch, threads: int) -> Batch:
    """The deliveries of ``sent`` again, as a partner retries them: same key
    and body, a later timestamp, a fresh signature."""
    later = int(time.time()) + 1
    requests = [raw_request(host, key, body, later) for key, body in sent.bodies]
    tag = f"{sent.tag}-retry"
    return Batch(
        tag, sent.count, sent.bodies, write_requests(directory, tag, requests, threads)
    )


def get_batch(directory: Path, host: str, path: str, threads: int) -> Batch:
    request = f"GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n".encode()
    tag = "get" + path.replace("/", "-")
    return Batch(
        tag, 1, [], write_requests(directory, tag, [request] * threads, threads)
    )


def send_all(
    port: int, host: str, deliveries: Sequence[tuple[str, bytes]], connections: int = 8
) -> None:
    """Send each delivery (signed now) until it is answered 2xx, from
    ``connections`` keep-alive connections; not timed."""
    pending = list(deliveries)
    for _ in range(5):
        pending = send_round(port, host, pending, connections)
        if not pending:
            return
        time.sleep(1)
    raise RuntimeError(f"{len(pending)} deliveries were never answered 2xx")


def send_round(
    port: int, host: str, deliveries: list[tuple[str, bytes]], connections: int
) -> list[tuple[str, bytes]]:
    """Send each delivery once; the ones not answered 2xx."""
    failed: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    work = iter(deliveries)

    def sender() -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        try:
            while True:
                with lock:
                    item = next(work, None)
                if item is None:
                    return
                key, body = item
                sock.sendall(raw_request(host, key, body, int(time.time())))
                answer = http.client.HTTPResponse(sock)
                answer.begin()
                answer.read()
                if not 200 <= answer.status < 300:
                    with lock:
                        failed.append(item)
                if answer.will_close:
                    sock.close()
                    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        finally:
            sock.close()

    threads = [threading.Thread(target=sender) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failed
