"""The partners: client threads that take deliveries from one queue and send
each to its source until it is acknowledged, following a webhook sender's
rule: any non-2xx or broken connection is retried with backoff
(``Retry-After`` honoured), signed anew each time by the source's signer
(Standard Webhooks for ``acme``, GitHub for ``hub``), to any of the servers:
a load balancer that avoids a server for half a second after it refused a
connection, and otherwise does not know which are down (a killed server
takes requests with it: they are the broken connections that matter)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from tests.chaos.script import Send
from tests.partner import Request

BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
RETRY_AFTER_MAX = 5.0
ATTEMPT_HEADER = "x-chaos-attempt"
"""A header unique to each attempt: the delivery log stores the headers of
the attempt whose decision it recorded, which says what that attempt was
answered."""
REFUSING_SECONDS = 0.5
GIVE_UP_SECONDS = 180.0
"""A delivery not acknowledged after this long is reported and dropped, so
that a broken run ends with a report instead of hanging."""


class Signer(Protocol):
    """A partner that signs a body under a key (``tests.partner``)."""

    def sign(self, body: bytes, key: str | None = None) -> Request: ...


@dataclass
class Traffic:
    """Everything the partner saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    """HTTP attempts, answered or not."""
    retried: int = 0
    """Attempts after a failed attempt of the same queue item."""
    acknowledged: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    """Non-2xx answers by ``status error`` (``503 store_unavailable``)."""
    broken: Counter[str] = field(default_factory=Counter)
    """Attempts without an answer, by exception type."""
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Every 2xx body, per key."""
    unexpected: list[str] = field(default_factory=list)
    """Answers that break the specification (a 500, a 4xx, a body that is not the
    answer to this delivery), described."""
    given_up: list[str] = field(default_factory=list)
    attempts: dict[str, str] = field(default_factory=dict)
    """Every attempt's ``ATTEMPT_HEADER`` and what came of it: ``2xx
    <outcome>``, the status, or ``broken <exception>``."""
    max_attempts: int = 0
    retry_seconds: float = 0.0
    """The longest time from an item's first attempt to its acknowledgment."""

    def answered(self, send: Send, attempt: str, response: httpx.Response) -> bool:
        """Record one answer; whether it acknowledged the delivery."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        with self.lock:
            self.sent += 1
            self.statuses[status] += 1
            if 200 <= status < 300 and isinstance(body, dict):
                self.attempts[attempt] = f"2xx {body.get('outcome')}"
                self.acknowledged += 1
                self.outcomes[str(body.get("outcome"))] += 1
                self.answers.setdefault(send.event.key, []).append(body)
                if (body.get("source"), body.get("key")) != (
                    send.source,
                    send.event.key,
                ):
                    self.unexpected.append(f"{send.event.key}: answered {body}")
                return True
            error = body.get("error") if isinstance(body, dict) else None
            self.attempts[attempt] = f"{status} {error}"
            self.refusals[f"{status} {error}"] += 1
            if status != 503:
                self.unexpected.append(
                    f"{send.event.key}: {status} {response.text[:300]}"
                )
            return False

    def failed(self, attempt: str, error: Exception) -> None:
        with self.lock:
            self.attempts[attempt] = f"broken {type(error).__name__}"
            self.sent += 1
            self.broken[type(error).__name__] += 1


class Simulator:
    """``threads`` client threads over the servers at ``urls()`` (asked
    before each attempt: a restarted server keeps its port); ``signers``
    sign for each source."""

    def __init__(
        self,
        urls: Callable[[], Sequence[str]],
        signers: Mapping[str, Signer],
        threads: int,
        seed: int,
    ) -> None:
        self.urls = urls
        self.signers = signers
        self.threads = threads
        self.rng = random.Random(seed)
        self.traffic = Traffic()
        self.queue: deque[Send] = deque()
        self.queue_lock = threading.Lock()
        self.closed = threading.Event()
        """No more items will be added: threads end when the queue is empty."""
        self.abort = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.refusing: dict[str, float] = {}
        """Until when each server is avoided, after it refused a connection."""

    def add(self, sends: Sequence[Send]) -> None:
        with self.queue_lock:
            self.queue.extend(sends)

    def pending(self) -> int:
        with self.queue_lock:
            return len(self.queue)

    def start(self) -> None:
        for number in range(self.threads):
            thread = threading.Thread(
                target=self._guarded, args=(number,), name=f"partner-{number}"
            )
            thread.start()
            self._threads.append(thread)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every thread; whether all ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not any(thread.is_alive() for thread in self._threads)

    def _guarded(self, number: int) -> None:
        try:
            self._client(random.Random(self.rng.getrandbits(64) + number))
        except BaseException as error:
            self.errors.append(error)
            self.abort.set()

    def _next(self) -> Send | None:
        while not self.abort.is_set():
            with self.queue_lock:
                if self.queue:
                    return self.queue.popleft()
            if self.closed.is_set():
                return None
            time.sleep(0.01)
        return None

    def _pick(self, rng: random.Random) -> str:
        """A server, at random among those that did not just refuse a
        connection (a load balancer's passive health check), else any."""
        urls = list(self.urls())
        now = time.monotonic()
        with self.queue_lock:
            open_ = [url for url in urls if self.refusing.get(url, 0.0) <= now]
        return rng.choice(open_ or urls)

    def _client(self, rng: random.Random) -> None:
        timeout = httpx.Timeout(30.0, connect=2.0)
        clients: dict[str, httpx.Client] = {}
        try:
            while (send := self._next()) is not None:
                self._deliver(send, rng, clients, timeout)
        finally:
            for client in clients.values():
                client.close()

    def _deliver(
        self,
        send: Send,
        rng: random.Random,
        clients: dict[str, httpx.Client],
        timeout: httpx.Timeout,
    ) -> None:
        """Send until a 2xx, with backoff; the attempts after the first are
        retries."""
        began = time.monotonic()
        attempt = 0
        while not self.abort.is_set():
            if attempt:
                with self.traffic.lock:
                    self.traffic.retried += 1
            attempt += 1
            url = self._pick(rng)
            client = clients.get(url)
            if client is None:
                client = clients[url] = httpx.Client(base_url=url, timeout=timeout)
            request = self.signers[send.source].sign(
                send.event.body, key=send.event.key
            )
            attempt_id = uuid.uuid4().hex
            wait = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(attempt - 1, 10))
            try:
                response = client.post(
                    f"/webhooks/{send.source}",
                    content=request.body,
                    headers={**request.headers, ATTEMPT_HEADER: attempt_id},
                )
            except httpx.TransportError as error:
                self.traffic.failed(attempt_id, error)
                if isinstance(error, httpx.ConnectError):
                    with self.queue_lock:
                        self.refusing[url] = time.monotonic() + REFUSING_SECONDS
                time.sleep(rng.uniform(0, wait))
            else:
                if self.traffic.answered(send, attempt_id, response):
                    with self.traffic.lock:
                        self.traffic.max_attempts = max(
                            self.traffic.max_attempts, attempt
                        )
                        self.traffic.retry_seconds = max(
                            self.traffic.retry_seconds, time.monotonic() - began
                        )
                    return
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    wait = min(RETRY_AFTER_MAX, float(retry_after))
                    time.sleep(wait * rng.uniform(1.0, 1.25))
                else:
                    time.sleep(rng.uniform(0, wait))
            if time.monotonic() - began > GIVE_UP_SECONDS:
                with self.traffic.lock:
                    self.traffic.given_up.append(
                        f"{send.event.key}: not acknowledged after {attempt} "
                        f"attempts in {GIVE_UP_SECONDS:.0f} s"
                    )
                return
