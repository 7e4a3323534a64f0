"""Processes as Linux's ``/proc`` shows them: parents, children, process
groups, command lines. The server harness (``tests/server_process.py``), the
chaos run and the ingest benchmark's CPU sampler read them here.

Every reader tolerates a process that ends while it is read: it is then
simply not there."""

from __future__ import annotations

import os
from pathlib import Path


def pids() -> list[int]:
    """Every process id on the machine."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state,
    ppid, pgrp, ...), or None when the process is gone.

    "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
    the fields start after its last parenthesis."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def command_name(pid: int) -> str:
    """The ``comm`` of ``/proc/<pid>/stat`` (the executable's short name)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return text[text.index("(") + 1 : text.rindex(")")]


def cmdline(pid: int) -> str:
    """The command line, its arguments separated by spaces."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """The direct children of ``pid``."""
    found = []
    for child in pids():
        fields = stat_fields(child)
        if fields is not None and int(fields[1]) == pid:
            found.append(child)
    return found


def tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    below: dict[int, list[int]] = {}
    for pid in pids():
        fields = stat_fields(pid)
        if fields is not None:
            below.setdefault(int(fields[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(below.get(pid, []))
    return found


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of the process group ``pgid``.

    Zombies stay members until reaped, and in some containers PID 1 reaps
    no orphan, so ``killpg`` alone cannot tell a dead group from a live
    one."""
    found = []
    for pid in pids():
        fields = stat_fields(pid)
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(pid)
    return found
