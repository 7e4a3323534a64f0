"""Access roles (specification §8): bearer tokens, stored as SHA-256 hashes.

The configuration holds one ``[tokens.NAME]`` table per token, with its role
and the hex SHA-256 of the token's UTF-8 bytes; never the token itself::

    [tokens.audit-team]
    role = "auditor"
    sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

Roles are ordered, ``reader < auditor < admin``: a role grants everything a
lower one does. A presented token is hashed and compared in constant time
with every configured hash. Tokens never appear in logs, error messages or
exceptions (the hashes do not either, except in the configuration file).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Annotated

from infrastructure.config_fields import ConfigError, FileTable, Table, decode, says

__all__ = [
    "ROLE_LABELS",
    "TOKEN_NAME",
    "Access",
    "Role",
    "Token",
    "new_token",
    "read_tokens",
    "token_hash",
]

TOKEN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A token's name (``fullmatch``): a TOML bare key, ``[tokens.NAME]`` unquoted."""
TOKEN_PREFIX = "idm_"


class Role(IntEnum):
    """What a token may do; a higher role includes the lower ones."""

    READER = 1
    AUDITOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The role's name in the configuration and in messages: ``auditor``."""
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        """The role named ``text`` (``reader``, ``auditor``, ``admin``)."""
        for role in cls:
            if role.label == text:
                return role
        raise ValueError(f"no role {text!r} (roles: {', '.join(ROLE_LABELS)})")


ROLE_LABELS = tuple(role.label for role in Role)


@dataclass(frozen=True)
class Token:
    """One configured token, ``[tokens.NAME]``: its name, role and hash."""

    name: str
    role: Role
    sha256: str = field(repr=False)
    """Hex SHA-256 of the token's UTF-8 bytes (64 lowercase hex characters)."""


def token_hash(token: str | bytes) -> str:
    """The hex SHA-256 of ``token`` (a string counts as its UTF-8 bytes)."""
    data = token.encode("utf-8") if isinstance(token, str) else token
    return hashlib.sha256(data).hexdigest()


def new_token() -> str:
    """A fresh random token: ``idm_`` and 256 random bits, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenTable(FileTable, frozen=True):
    """``[tokens.NAME]`` as the file has it."""

    role: Annotated[
        str,
        says(
            f"expected one of {', '.join(ROLE_LABELS)}",
            pattern=f"^({'|'.join(ROLE_LABELS)})\\Z",
        ),
    ]
    sha256: Annotated[
        str,
        says(
            "expected 64 lowercase hex characters (the SHA-256 of the token; "
            "`idemsync tokens add` writes it)",
            pattern=r"^[0-9a-f]{64}\Z",
        ),
    ]


def read_token(name: str, value: object) -> Token:
    """``[tokens.NAME]``, validated."""
    where = f"tokens.{name}"
    if not TOKEN_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}: a token name is 1 to 64 letters, digits, '-' or '_'"
        )
    table = decode(value, TokenTable, where)
    return Token(name=name, role=Role.parse(table.role), sha256=table.sha256)


def read_tokens(tables: Table) -> Mapping[str, Token]:
    """The top-level ``[tokens]`` table: one token per sub-table."""
    read: dict[str, Token] = {}
    for name, entry in tables.items():
        token = read_token(name, entry)
        same = next((t.name for t in read.values() if t.sha256 == token.sha256), None)
        if same is not None:
            raise ConfigError(
                f"tokens.{name}.sha256: the same hash as tokens.{same} "
                "(one token, two roles)"
            )
        read[name] = token
    return MappingProxyType(read)


class Access:
    """Answers which configured token (and so which role) a bearer token is."""

    def __init__(self, tokens: Mapping[str, Token]) -> None:
        self._tokens = tuple(
            (bytes.fromhex(token.sha256), token) for token in tokens.values()
        )

    def __repr__(self) -> str:
        return f"Access({len(self._tokens)} tokens)"

    def token_for(self, presented: str | bytes) -> Token | None:
        """The configured token whose hash is ``presented``'s, or None.

        Every configured hash is compared (``hmac.compare_digest``), also
        after a match, so the time taken does not say which one matched."""
        data = presented.encode("utf-8") if isinstance(presented, str) else presented
        digest = hashlib.sha256(data).digest()
        found: Token | None = None
        for expected, token in self._tokens:
            if hmac.compare_digest(digest, expected):
                found = token
        return found

    def role_of(self, presented: str | bytes) -> Role | None:
        """The role of ``presented``, or None for a token not configured."""
        token = self.token_for(presented)
        return None if token is None else token.role
