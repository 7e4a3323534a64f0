"""``idemsync tokens …``: add a bearer token (shown once), list them.

A token is written to the configuration file as its SHA-256 only, in a
``[tokens.NAME]`` table appended to the file's text (its comments survive).
The file is ``IDEMSYNC_CONFIG``, else ``./idemsync.toml``, which is first
made as a copy of the shipped example when it does not exist yet: the
example itself is never written. A file made here is ``0600``; a file that
other users may read or write (``infrastructure/file_modes.py``) is
tightened to ``0600`` when it is rewritten, and the command says so: a user
who may write it could otherwise add an admin token of their own.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infrastructure.access import ROLE_LABELS, TOKEN_NAME, new_token, token_hash
from infrastructure.file_modes import PRIVATE, LooseFile, loose_bits
from infrastructure.settings import (
    EXAMPLE_CONFIG,
    ConfigError,
    Settings,
    load_settings,
)

RESTART = "Restart running `idemsync serve` processes to pick up a new token."


def target_config() -> tuple[Path, bool]:
    """The file ``tokens add`` writes, and whether it must be made first
    (``./idemsync.toml`` from the example)."""
    explicit = os.environ.get("IDEMSYNC_CONFIG")
    if explicit:
        return Path(explicit), False
    local = Path.cwd() / "idemsync.toml"
    return local, not local.exists()


def _create_private(path: Path, content: bytes) -> None:
    """Make ``path`` with ``content``, readable and writable by its owner
    only (never over an existing file)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    with os.fdopen(handle, "wb") as file:
        file.write(content)


def _mode_to_keep(path: Path) -> tuple[int, LooseFile | None]:
    """The mode the rewritten ``path`` gets: its own, or ``0600`` when other
    users may read or write it (then also what it was, to say so)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if not loose_bits(mode):
        return mode, None
    return PRIVATE, LooseFile(path, "configuration file", mode)


def _write_checked(path: Path, text: str) -> LooseFile | None:
    """Replace ``path``'s content with ``text`` once a copy of it parses
    (the original is untouched when it would not); return what the file was
    when its mode was tightened."""
    mode, tightened = _mode_to_keep(path)
    handle, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        temporary.chmod(mode)
        try:
            load_settings(temporary, resolve_secrets=False)
        except ConfigError as error:
            raise ConfigError(
                f"{path}: would not parse with the new table, left unchanged: "
                + str(error).replace(str(temporary), str(path))
            ) from None
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return tightened


def cmd_tokens_add(args: argparse.Namespace, settings: Settings) -> int:
    name, role = args.name, args.role
    if not TOKEN_NAME.fullmatch(name):
        print(
            f"idemsync: invalid token name {name!r}: 1 to 64 letters, digits, "
            "'-' or '_'",
            file=sys.stderr,
        )
        return 2
    path, create = target_config()
    if create:
        _create_private(path, EXAMPLE_CONFIG.read_bytes())
        print(
            f"created {path} as a copy of the shipped {EXAMPLE_CONFIG.name} (mode 0600)"
        )
    current = load_settings(path, resolve_secrets=False)
    if name in current.tokens:
        print(
            f"idemsync: {path} already has a token named {name!r} "
            f"(role {current.tokens[name].role.label}); choose another name",
            file=sys.stderr,
        )
        return 2
    token = new_token()
    text = path.read_text(encoding="utf-8")
    separator = "" if not text or text.endswith("\n") else "\n"
    today = datetime.now(UTC).date().isoformat()
    table = (
        f"\n# {today}: `idemsync tokens add`; the SHA-256 of the token, not the token\n"
        f"[tokens.{name}]\n"
        f'role = "{role}"\n'
        f'sha256 = "{token_hash(token)}"\n'
    )
    try:
        tightened = _write_checked(path, text + separator + table)
    except OSError as error:
        print(f"idemsync: cannot write {path}: {error.strerror}", file=sys.stderr)
        return 2
    if tightened is not None:
        print(
            f"tightened {path} to mode 0600: it was {tightened.mode:04o}, "
            f"{tightened.who} (anyone who may write it can add an admin token)"
        )
    written = load_settings(path, resolve_secrets=False).tokens[name]
    print(
        f"added token {written.name!r} with role {written.role.label} to {path} "
        "(only its SHA-256 is stored)"
    )
    print("The token is shown once, here; it will not be shown again:")
    print(token)
    print(RESTART)
    return 0


def cmd_tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    tokens = settings.tokens
    if not tokens:
        print(f"{settings.config_path}: no tokens (add one: idemsync tokens add)")
        return 0
    width = max(len("name"), *(len(name) for name in tokens))
    print(f"{settings.config_path}:")
    print(f"{'name':<{width}}  role")
    for token in tokens.values():
        print(f"{token.name:<{width}}  {token.role.label}")
    return 0


def add_commands(commands: Any) -> None:
    """Register ``idemsync tokens`` and its subcommands."""
    tokens = commands.add_parser("tokens", help="bearer tokens and their roles")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    add = token_commands.add_parser(
        "add",
        help="make a new token; print it once, store only its hash",
        description="Generate a new bearer token with a role, print it once "
        "and append its SHA-256 as [tokens.NAME] to the configuration file "
        "(IDEMSYNC_CONFIG, else ./idemsync.toml, made from the shipped "
        "example if missing). " + RESTART,
    )
    add.add_argument("name", help="the token's name: letters, digits, '-', '_'")
    add.add_argument("--role", required=True, choices=ROLE_LABELS)
    add.set_defaults(run=cmd_tokens_add, secrets=False)
    token_commands.add_parser(
        "list", help="name and role of each token (never a hash)"
    ).set_defaults(run=cmd_tokens_list, secrets=False)
