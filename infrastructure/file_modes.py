"""Who else may read or write the configuration file and the SQLite store.

The rule (specification §10): a file is *loose* when its group or other
users may write it, or other users may read it (mode bits ``0o026``). Write
access lets a local user add an admin token, turn a source's scheme to
``none`` or point it at another mapping; read access shows the token hashes
and the name of every secret's variable (the config), or every payload
(the store). Group read is allowed: ``0640`` shares a file with a service
group. The shipped example is public: only who may write it is checked.

``idemsync serve`` logs each loose file at start; ``idemsync config check``
prints them, and with ``--strict`` refuses (exit 1). ``tokens add`` writes
the config file ``0600`` when it makes it or finds it loose.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from infrastructure.persistence.database import Database
from infrastructure.settings import EXAMPLE_CONFIG, Settings

GROUP_OR_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH
LOOSE = GROUP_OR_OTHER_WRITE | stat.S_IROTH
"""Mode bits that make a file loose: group write, other write, other read."""
PRIVATE = 0o600
"""The mode ``tokens add`` gives the config file it makes or tightens."""
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class LooseFile:
    """A file that users other than its owner (and its group, for reading)
    may read or write."""

    path: Path
    what: str
    mode: int

    @property
    def who(self) -> str:
        """``writable by its group and readable by other users``..."""
        who = []
        if self.mode & stat.S_IWGRP:
            who.append("writable by its group")
        if self.mode & stat.S_IWOTH:
            who.append("writable by other users")
        if self.mode & stat.S_IROTH:
            who.append("readable by other users")
        return " and ".join(who)

    def __str__(self) -> str:
        return (
            f"{self.what} {self.path} is {self.who} "
            f"(mode {self.mode:04o}): chmod g-w,o-rwx {self.path}"
        )


def loose_bits(mode: int, public: bool = False) -> int:
    """The bits of ``mode`` that make a file loose (for a ``public`` file,
    only the write bits)."""
    return mode & (GROUP_OR_OTHER_WRITE if public else LOOSE)


def check(path: Path, what: str, public: bool = False) -> LooseFile | None:
    """``path`` as a loose file, or None when it is not (or does not exist)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    return LooseFile(path, what, mode) if loose_bits(mode, public) else None


def loose_files(settings: Settings) -> list[LooseFile]:
    """The configuration file and, on SQLite, the database file and its
    ``-wal``/``-shm``/``-journal`` companions where present, that are loose."""
    config = settings.config_path
    found = [
        check(config, "configuration file", public=config == EXAMPLE_CONFIG),
    ]
    try:
        database = Database(settings.database_url)
    except ValueError:  # not a database URL idemsync knows: no file to check
        return [loose for loose in found if loose is not None]
    if not database.is_postgres:
        store = database.sqlite_path
        found.append(check(store, "SQLite database"))
        found += [
            check(store.with_name(store.name + suffix), "SQLite database file")
            for suffix in SQLITE_COMPANIONS
        ]
    return [loose for loose in found if loose is not None]
