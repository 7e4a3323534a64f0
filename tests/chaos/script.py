"""The partner's script: what it will send, to which source, in which order,
and the ground truth computed from it alone.

A script is made of *chunks*. Each chunk is a valid history
(``tests.histories.history``) whose object ids and keys carry the chunk's
number, so chunks never share an object, and a *plan* for it. Each object of
a chunk is delivered over one source: ``acme`` (Standard Webhooks, the key is
signed) or, for about a third of them, ``hub`` (GitHub: the key,
``X-GitHub-Delivery``, a GUID, is outside the signature). Objects are not
namespaced per source, so no object is written by both.

The plan: every event once, reordered within a window, plus about 30%
duplicates (same key, same bytes), a third of them *concurrent* (two or three
copies next to each other in the queue, so that different client threads
send them at the same moment, usually to different servers) and the rest
*late* (anywhere in the chunk, before or after the original); then about 10%
*re-sends under fresh keys* (same bytes, a key never sent before), a third
of them next to a copy of their event (sent at the same moment: the re-send
may win) and the rest anywhere after the event's first place. On ``acme`` the
partner signs the fresh key (the event is ``stale``: its position is the
original's); on ``hub`` it is a captured body replayed with its valid
signature (a ``duplicate`` of the first copy, found by its fingerprint).

A fixed-size run takes as many chunks as it needs; a run of a given duration
keeps taking them until its time is up.
"""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tests.histories import Event, ObjectKey, ground_truth, history

ORDERS_PER_CHUNK = 300
CUSTOMERS_PER_CHUNK = 90
DUPLICATE_RATIO = 0.3
CONCURRENT_SHARE = 1 / 3
RESEND_RATIO = 0.1
"""Re-sends under fresh keys, per event of the chunk."""
HUB_SHARE = 1 / 3
"""The share of a chunk's objects delivered over ``hub`` (GitHub)."""
REORDER_WINDOW = 150
"""How far (in queue places) an event may move from its source order."""
ACME, HUB = "acme", "hub"
NAMESPACE = "partner"
"""Both sources' namespace: one partner's objects over two channels (each
object is sent over one of them only)."""
KINDS = ("first", "concurrent", "late", "re-send", "concurrent re-send")


@dataclass(frozen=True)
class Send:
    """One item of the partner's queue: an event to deliver to ``source``
    until a 2xx.

    ``kind`` is ``first`` (the event's own place in the plan), ``concurrent``
    (a copy next to another copy), ``late`` (a duplicate anywhere), ``re-send``
    (the event again under a fresh key, after its first place) or
    ``concurrent re-send`` (the same, next to a copy). ``original`` is the key
    the event was first sent under: ``event.key`` but for a re-send."""

    event: Event
    kind: str
    source: str
    original: str

    @property
    def resent(self) -> bool:
        return self.event.key != self.original


@dataclass(frozen=True)
class Chunk:
    number: int
    events: list[Event]
    """The history in source order, each event under its original key."""
    plan: list[Send]


def _renamed(event: Event, number: int, key: str) -> Event:
    """``event`` with its object ids prefixed by the chunk number, under
    ``key``."""
    envelope: dict[str, Any] = json.loads(event.body)
    data = envelope["data"]
    for name in ("order_id", "customer_id"):
        if name in data:
            data[name] = data[name].replace("_", f"_c{number}x", 1)
    object_id = event.object_id.replace("_", f"_c{number}x", 1)
    return dataclasses.replace(
        event, key=key, body=json.dumps(envelope).encode(), object_id=object_id
    )


def fresh_key(rng: random.Random, source: str, number: int) -> str:
    """A key never used before: a GitHub delivery GUID on ``hub``, a message
    id naming the chunk elsewhere."""
    if source == HUB:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return f"msg_c{number}x{rng.getrandbits(64):016x}"


def chunk(seed: int, number: int) -> Chunk:
    """Chunk ``number`` of the script of ``seed``."""
    rng = random.Random(f"{seed}/{number}")
    events = history(
        rng.getrandbits(32), orders=ORDERS_PER_CHUNK, customers=CUSTOMERS_PER_CHUNK
    )
    sources = {
        each: HUB if rng.random() < HUB_SHARE else ACME
        for each in dict.fromkeys(event.object for event in events)
    }
    source_order = []
    for event in events:
        source = sources[event.object]
        key = (
            fresh_key(rng, source, number)
            if source == HUB
            else event.key.replace("_", f"_c{number}x", 1)
        )
        source_order.append(_renamed(event, number, key))
    # Reorder: each event moves up to REORDER_WINDOW places from its own.
    placed = sorted(
        (
            index + rng.uniform(0, REORDER_WINDOW),
            Send(event, "first", sources[events[index].object], event.key),
        )
        for index, event in enumerate(source_order)
    )
    plan = [send for _, send in placed]
    originals = list(plan)
    duplicates = round(len(source_order) * DUPLICATE_RATIO)
    for _ in range(round(duplicates * CONCURRENT_SHARE)):
        at = rng.randrange(len(plan))
        copies = rng.choice((1, 1, 2))
        copy = dataclasses.replace(plan[at], kind="concurrent")
        plan[at + 1 : at + 1] = [copy] * copies
    while len(plan) < len(source_order) + duplicates:
        copy = dataclasses.replace(rng.choice(originals), kind="late")
        plan.insert(rng.randrange(len(plan) + 1), copy)
    resends = round(len(source_order) * RESEND_RATIO)
    side_by_side = round(resends * CONCURRENT_SHARE)
    for index in range(resends):
        if index < side_by_side:
            at = rng.randrange(len(plan))
            kind, of = "concurrent re-send", plan[at]
        else:
            of = rng.choice(originals)
            at = rng.randrange(plan.index(of), len(plan))
            kind = "re-send"
        event = dataclasses.replace(of.event, key=fresh_key(rng, of.source, number))
        plan.insert(at + 1, dataclasses.replace(of, event=event, kind=kind))
    return Chunk(number, source_order, plan)


def chunks(seed: int) -> Iterator[Chunk]:
    """Chunk 0, 1, 2... of the script of ``seed``."""
    number = 0
    while True:
        yield chunk(seed, number)
        number += 1


def chunks_for(seed: int, sends: int) -> list[Chunk]:
    """The first chunks of the script of ``seed`` that make at least
    ``sends`` deliveries."""
    taken: list[Chunk] = []
    for next_chunk in chunks(seed):
        if sum(len(c.plan) for c in taken) >= sends:
            return taken
        taken.append(next_chunk)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Keys:
    """Every key a script sends: its source and the original key of the event
    it carries (itself, but for a re-send under a fresh key)."""

    source: dict[str, str]
    original: dict[str, str]

    def groups(self) -> dict[str, list[str]]:
        """Per event (its original key), every key it was sent under: the
        original first."""
        found: dict[str, list[str]] = {}
        for key, original in self.original.items():
            found.setdefault(original, [original])
            if key != original:
                found[original].append(key)
        return found


def keys_of(taken: Sequence[Chunk]) -> Keys:
    source: dict[str, str] = {}
    original: dict[str, str] = {}
    for each in taken:
        for send in each.plan:
            source[send.event.key] = send.source
            original[send.event.key] = send.original
    return Keys(source, original)


def truth_of(taken: Sequence[Chunk]) -> dict[ObjectKey, dict[str, Any]]:
    """Every object's state after in-order delivery of every chunk (chunks
    share no object, so each is computed alone; re-sends change nothing: the
    truth is each event once, in source order, whatever its source)."""
    truth: dict[ObjectKey, dict[str, Any]] = {}
    for each in taken:
        truth.update(ground_truth(each.events))
    return truth
