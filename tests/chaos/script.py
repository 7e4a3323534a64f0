"""The partner's script: what it will send, in which order, and the ground
truth computed from it alone.

A script is made of *chunks*. Each chunk is a valid history
(``tests.histories.history``) whose object ids and keys carry the chunk's
number, so chunks never share an object, and a *plan* for it: every event
once, reordered within a window, plus about 30% duplicates (same key, same
bytes), a third of them *concurrent* (two or three copies next to each other
in the queue, so that different client threads send them at the same moment,
usually to different servers) and the rest *late* (anywhere in the chunk,
before or after the original). A fixed-size run takes as many chunks as it
needs; a run of a given duration keeps taking them until its time is up.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tests.histories import Event, ObjectKey, ground_truth, history

ORDERS_PER_CHUNK = 300
CUSTOMERS_PER_CHUNK = 90
DUPLICATE_RATIO = 0.3
CONCURRENT_SHARE = 1 / 3
REORDER_WINDOW = 150
"""How far (in queue places) an event may move from its source order."""


@dataclass(frozen=True)
class Send:
    """One item of the partner's queue: an event to deliver until a 2xx.

    ``kind`` is ``first`` (the event's own place in the plan), ``concurrent``
    (a copy next to another copy) or ``late`` (a duplicate anywhere)."""

    event: Event
    kind: str


@dataclass(frozen=True)
class Chunk:
    number: int
    events: list[Event]
    plan: list[Send]


def _renamed(event: Event, number: int) -> Event:
    """``event`` with its object ids and key prefixed by the chunk number."""
    envelope: dict[str, Any] = json.loads(event.body)
    data = envelope["data"]
    for name in ("order_id", "customer_id"):
        if name in data:
            data[name] = data[name].replace("_", f"_c{number}x", 1)
    object_id = event.object_id.replace("_", f"_c{number}x", 1)
    return Event(
        key=event.key.replace("_", f"_c{number}x", 1),
        body=json.dumps(envelope).encode(),
        type=event.type,
        kind=event.kind,
        object_id=object_id,
        sequence=event.sequence,
    )


def chunk(seed: int, number: int) -> Chunk:
    """Chunk ``number`` of the script of ``seed``."""
    rng = random.Random(f"{seed}/{number}")
    source_order = [
        _renamed(event, number)
        for event in history(
            rng.getrandbits(32), orders=ORDERS_PER_CHUNK, customers=CUSTOMERS_PER_CHUNK
        )
    ]
    # Reorder: each event moves up to REORDER_WINDOW places from its own.
    placed = sorted(
        (index + rng.uniform(0, REORDER_WINDOW), Send(event, "first"))
        for index, event in enumerate(source_order)
    )
    plan = [send for _, send in placed]
    duplicates = round(len(source_order) * DUPLICATE_RATIO)
    concurrent = round(duplicates * CONCURRENT_SHARE)
    for _ in range(concurrent):
        at = rng.randrange(len(plan))
        copies = rng.choice((1, 1, 2))
        plan[at + 1 : at + 1] = [Send(plan[at].event, "concurrent")] * copies
    while len(plan) < len(source_order) + duplicates:
        plan.insert(
            rng.randrange(len(plan) + 1), Send(rng.choice(source_order), "late")
        )
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


def truth_of(taken: Sequence[Chunk]) -> dict[ObjectKey, dict[str, Any]]:
    """Every object's state after in-order delivery of every chunk (chunks
    share no object, so each is computed alone)."""
    truth: dict[ObjectKey, dict[str, Any]] = {}
    for each in taken:
        truth.update(ground_truth(each.events))
    return truth
