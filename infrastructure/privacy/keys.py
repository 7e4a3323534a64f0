"""Keys for personal data: one data key per data subject, wrapped by a master
key, and the authenticated encryption of a field with it.

Crypto-shredding: a subject's personal fields are stored sealed with the
subject's data key; erasing that key (``SubjectKeys.erase``) makes every
copy unreadable at once, in events, snapshots and exports alike, without
touching the stored bytes that the audit chain hashes.

- A **data key** is 32 random bytes (AES-256-GCM, from ``cryptography``).
  It is stored only wrapped: sealed with the master key, with the
  subject's namespace and id as associated data, so a wrapped key moved to
  another subject's row does not open.
- The **master key** comes from the environment (``env:`` in the
  configuration), never from the database. It has an id, the first 16 hex
  digits of its SHA-256, stored beside each wrapped key: rotation
  (``SubjectKeys.rewrap``) unwraps with the old master and wraps with the
  new one, row by row, and can be run again after an interruption.
- A **sealed field** is text: ``enc:v1:`` and the base64 of a 12-byte random
  nonce and the ciphertext with its tag. The associated data names the
  subject and the field, so a sealed value cannot be replayed into another
  field or subject.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = "enc:v1:"
NONCE_BYTES = 12
KEY_BYTES = 32


class DoesNotOpen(Exception):
    """A key that does not open what it is asked to (wrong master key,
    tampered row or sealed value)."""


@dataclass(frozen=True)
class MasterKey:
    """The key that wraps every subject's data key (never shown by ``repr``)."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"a master key is {KEY_BYTES} bytes")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.key).hexdigest()[:16]

    @staticmethod
    def from_text(text: str) -> MasterKey:
        """The base64 of 32 bytes (``openssl rand -base64 32``)."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            raise ValueError("a master key is the base64 of 32 bytes") from None
        return MasterKey(key)

    def wrap(self, data_key: bytes, subject: str) -> bytes:
        return _seal(self.key, data_key, subject.encode())

    def unwrap(self, wrapped: bytes, subject: str) -> bytes:
        return _open(self.key, wrapped, subject.encode())


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal_field(data_key: bytes, value: str, subject: str, field: str) -> str:
    """``value`` sealed for ``field`` of ``subject``."""
    sealed = _seal(data_key, value.encode(), f"{subject}#{field}".encode())
    return SEALED + base64.b64encode(sealed).decode("ascii")


def open_field(data_key: bytes, sealed: str, subject: str, field: str) -> str:
    """The text ``seal_field`` sealed; ``DoesNotOpen`` when it does not open."""
    if not sealed.startswith(SEALED):
        raise DoesNotOpen(f"{field} is not sealed")
    raw = base64.b64decode(sealed.removeprefix(SEALED))
    return _open(data_key, raw, f"{subject}#{field}".encode()).decode()


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED)


def _seal(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def _open(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated)
    except InvalidTag:
        raise DoesNotOpen("the key does not open it (wrong key, or tampered)") from None
