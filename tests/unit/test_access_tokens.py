"""Access roles (specification §8): ``[tokens.NAME]`` parsing, role order, and
the constant-time lookup of a presented token."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from infrastructure.access import (
    Access,
    Role,
    Token,
    new_token,
    read_tokens,
    token_hash,
)
from infrastructure.settings import EXAMPLE_CONFIG, ConfigError, load_settings

HASH = hashlib.sha256(b"test").hexdigest()


def load(tmp_path: Path, text: str) -> dict[str, Token]:
    path = tmp_path / "idemsync.toml"
    path.write_text(text)
    return dict(load_settings(path, {}, resolve_secrets=False).tokens)


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, text)
    return str(refused.value)


def test_roles_are_ordered_reader_then_auditor_then_admin() -> None:
    assert Role.READER < Role.AUDITOR < Role.ADMIN
    assert sorted([Role.ADMIN, Role.READER, Role.AUDITOR]) == list(Role)
    assert [role.label for role in Role] == ["reader", "auditor", "admin"]
    assert Role.parse("auditor") is Role.AUDITOR


def test_an_unknown_role_name_is_refused_by_parse() -> None:
    with pytest.raises(ValueError, match="roles: reader, auditor, admin"):
        Role.parse("Admin")


def test_a_token_table_is_read_with_its_name_role_and_hash(tmp_path: Path) -> None:
    tokens = load(
        tmp_path,
        f"""
[tokens.audit-team]
role = "auditor"
sha256 = "{HASH}"

[tokens.ops_1]
role = "admin"
sha256 = "{token_hash("another")}"
""",
    )
    assert tokens["audit-team"] == Token("audit-team", Role.AUDITOR, HASH)
    assert tokens["ops_1"].role is Role.ADMIN
    assert list(tokens) == ["audit-team", "ops_1"]


def test_the_contract_example_hash_is_the_sha256_of_the_tokens_utf8_bytes() -> None:
    assert token_hash("test") == HASH
    assert token_hash("tést") == hashlib.sha256("tést".encode()).hexdigest()
    assert token_hash(b"test") == HASH


def test_no_tokens_table_means_no_tokens(tmp_path: Path) -> None:
    assert load(tmp_path, "") == {}
    example = load_settings(EXAMPLE_CONFIG, {}, resolve_secrets=False)
    assert dict(example.tokens) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tokens = "x"', "tokens: expected a table"),
        ('[tokens]\nops = "x"', "tokens.ops: expected a table"),
        (
            f'[tokens.ops]\nrole = "admin"\nsha256 = "{HASH}"\nexpires = 1',
            "tokens.ops.expires: unknown key (known: role, sha256)",
        ),
        (f'[tokens.ops]\nsha256 = "{HASH}"', "tokens.ops.role: missing"),
        ('[tokens.ops]\nrole = "admin"', "tokens.ops.sha256: missing"),
        (
            f'[tokens.ops]\nrole = "root"\nsha256 = "{HASH}"',
            "tokens.ops.role: expected one of reader, auditor, admin",
        ),
        (
            f'[tokens.ops]\nrole = "Admin"\nsha256 = "{HASH}"',
            "tokens.ops.role: expected one of reader, auditor, admin",
        ),
        (
            f'[tokens.ops]\nrole = 3\nsha256 = "{HASH}"',
            "tokens.ops.role: expected one of reader, auditor, admin",
        ),
        (
            f'[tokens.ops]\nrole = "admin"\nsha256 = "{HASH.upper()}"',
            "tokens.ops.sha256: expected 64 lowercase hex characters",
        ),
        (
            f'[tokens.ops]\nrole = "admin"\nsha256 = "{HASH[:-1]}"',
            "tokens.ops.sha256: expected 64 lowercase hex characters",
        ),
        (
            f'[tokens.ops]\nrole = "admin"\nsha256 = "{HASH[:-1]}g"',
            "tokens.ops.sha256: expected 64 lowercase hex characters",
        ),
        (
            f'[tokens."ops team"]\nrole = "admin"\nsha256 = "{HASH}"',
            "tokens.ops team: a token name is 1 to 64 letters, digits",
        ),
        (
            f'[tokens.ops]\nrole = "admin"\nsha256 = "{HASH}\\n"',
            "tokens.ops.sha256: expected 64 lowercase hex characters",
        ),
        (
            f'[tokens.a]\nrole = "reader"\nsha256 = "{HASH}"\n'
            f'[tokens.b]\nrole = "admin"\nsha256 = "{HASH}"',
            "tokens.b.sha256: the same hash as tokens.a",
        ),
    ],
)
def test_each_token_error_names_the_dotted_key(
    tmp_path: Path, text: str, message: str
) -> None:
    assert refusal(tmp_path, text).startswith(message)


def test_the_removed_admin_enabled_flag_says_what_replaced_it(tmp_path: Path) -> None:
    message = refusal(tmp_path, "[server]\nadmin_enabled = true")
    assert message.startswith("server.admin_enabled: no longer used")
    assert "admin role" in message


def test_a_tokens_hash_is_not_in_its_repr() -> None:
    token = Token("ops", Role.ADMIN, HASH)
    assert HASH not in repr(token)
    assert HASH not in repr(Access({"ops": token}))


def test_a_presented_token_answers_its_configured_role() -> None:
    reader, admin = new_token(), new_token()
    access = Access(
        read_tokens(
            {
                "ci": {"role": "reader", "sha256": token_hash(reader)},
                "ops": {"role": "admin", "sha256": token_hash(admin)},
            }
        )
    )
    assert access.role_of(reader) is Role.READER
    assert access.role_of(admin.encode()) is Role.ADMIN
    token = access.token_for(admin)
    assert token is not None and token.name == "ops"
    for wrong in ("", admin[:-1], admin + "x", admin.upper(), token_hash(admin)):
        assert access.role_of(wrong) is None


def test_without_tokens_nothing_is_accepted() -> None:
    assert Access({}).role_of("") is None
    assert Access({}).role_of(new_token()) is None


def test_every_configured_hash_is_compared_even_after_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = new_token()
    configured = {"first": {"role": "reader", "sha256": token_hash(first)}}
    for number in range(4):
        configured[f"other{number}"] = {
            "role": "admin",
            "sha256": token_hash(new_token()),
        }
    access = Access(read_tokens(configured))
    calls, real = [], hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr("infrastructure.access.hmac.compare_digest", counting)
    assert access.role_of(first) is Role.READER
    assert len(calls) == 5
    calls.clear()
    assert access.role_of("nope") is None
    assert len(calls) == 5


def test_new_tokens_are_long_random_and_prefixed() -> None:
    made = {new_token() for _ in range(100)}
    assert len(made) == 100
    assert all(token.startswith("idm_") and len(token) >= 40 for token in made)
