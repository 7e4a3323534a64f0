"""What the order and customer transition tables share: the specification's rule for
one cell, computed from a lifecycle graph, and the check that an object does
what its cell says (specification §4, "Reference domain rules").

Each test module restates its own lifecycle graph from the specification and passes
it in: the expected verdicts do not come from ``domain.rules``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.commands import Command
from domain.errors import DomainError, IllegalTransition, NotYetCreated
from domain.objects import SyncedObject
from domain.rules import Verdict

SOURCE = "acme"
T0 = datetime(2024, 1, 1, tzinfo=UTC)

Graph = Mapping[str, tuple[str, ...]]
"""A lifecycle graph: each status and its direct successors."""


# -- time, sequence, keys ----------------------------------------------------------


def at(step: int) -> dict[str, Any]:
    """A command's ``occurred_at`` and ``sequence`` for ``step``: its second
    after ``T0`` and ``step`` itself, so that a later step is newer."""
    return {"occurred_at": T0 + timedelta(seconds=step), "sequence": step}


def key_of(command: Command) -> str:
    """The idempotency key these tests deliver ``command`` with."""
    return f"k-{command.sequence}-{command.type}"


def execute(obj: SyncedObject, command: Command) -> None:
    """Execute ``command`` on ``obj`` from ``SOURCE`` with its ``key_of``."""
    obj.execute(command, SOURCE, key_of(command))


# -- the lifecycle graph -------------------------------------------------------------


def predecessors(graph: Graph, start: str) -> dict[str, str]:
    """Every status reachable from ``start`` by a path of length >= 1, with the
    status before it on a shortest such path (BFS)."""
    before: dict[str, str] = {}
    queue = deque([start])
    while queue:
        status = queue.popleft()
        for following in graph[status]:
            if following not in before:
                before[following] = status
                queue.append(following)
    return before


def reachable(graph: Graph, start: str) -> set[str]:
    """Every status reachable from ``start`` by a path of length >= 1."""
    return set(predecessors(graph, start))


def shortest_path(graph: Graph, start: str, goal: str) -> list[str]:
    """The statuses after ``start`` on a shortest path to ``goal``; empty when
    ``goal`` is ``start``."""
    if goal == start:
        return []
    before = predecessors(graph, start)
    assert goal in before, f"{goal} is not reachable from {start}"
    path = [goal]
    while before[path[-1]] != start:
        path.append(before[path[-1]])
    return path[::-1]


def expected_verdict(
    graph: Graph, status: str | None, target: str, *, creates: bool
) -> Verdict:
    """The specification's rule for the cell of an object in ``status`` (``None``:
    it does not exist yet) and an event whose status is ``target`` (``creates``:
    the event type that creates the object)."""
    if status is None:
        return Verdict.CREATE if creates else Verdict.PARK
    if target == status:
        return Verdict.SAME
    if target in reachable(graph, status):
        return Verdict.ADVANCE
    return Verdict.REJECT


# -- what a cell does to an object ---------------------------------------------------


REFUSALS: dict[Verdict, type[DomainError]] = {
    Verdict.PARK: NotYetCreated,
    Verdict.REJECT: IllegalTransition,
}
"""The error each refusing verdict raises."""


def assert_fields_won(obj: SyncedObject, command: Command) -> None:
    """Every field of ``command`` holds its value, at its position."""
    position = command.position()
    for name, value in command.values().items():
        assert obj.values[name] == value
        assert obj.positions[name] == position


def assert_cell_is_done(
    obj: SyncedObject,
    status: str | None,
    command: Command,
    verdict: Verdict,
    *,
    created: str,
    target: str,
) -> None:
    """Execute ``command``, newer than anything ``obj`` (in ``status``) has
    seen, and check that it does what ``verdict`` says.

    ``PARK``: ``NotYetCreated``; ``REJECT``: ``IllegalTransition``; either way
    no new pending event and the state unchanged. Otherwise it is applied: one
    more pending event and every field taken; ``KEEP``: the status and its
    position as they were; else the status at the command's position, and
    ``created`` (``CREATE``), ``target`` (``ADVANCE``) or still ``status``
    (``SAME``).
    """
    assert obj.status == status
    before = obj.state()
    pending_before = len(obj.pending_events)
    position = command.position()

    refusal = REFUSALS.get(verdict)
    if refusal is not None:
        with pytest.raises(refusal):
            execute(obj, command)
        assert len(obj.pending_events) == pending_before
        assert obj.state() == before
        return
    execute(obj, command)
    assert len(obj.pending_events) == pending_before + 1
    assert_fields_won(obj, command)
    if verdict is Verdict.KEEP:
        assert obj.status == status
        assert obj.positions["status"] == before["positions"]["status"]
        return
    assert obj.positions["status"] == position
    if verdict is Verdict.CREATE:
        assert obj.status == created
    elif verdict is Verdict.ADVANCE:
        assert obj.status == target
    else:
        assert verdict is Verdict.SAME
        assert obj.status == status
