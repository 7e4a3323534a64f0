"""``idemsync tokens add|list`` (specification §8): a new token is printed once,
only its SHA-256 is written, and it then opens the app built from that file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from idemsync.cli import main
from infrastructure.access import Role
from infrastructure.settings import EXAMPLE_CONFIG, load_settings
from web.app import create_app

TOKEN = re.compile(r"^idm_[A-Za-z0-9_-]{43}$", re.MULTILINE)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory, no IDEMSYNC_CONFIG."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IDEMSYNC_CONFIG", raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_tokens_add_prints_the_token_once_and_stores_only_its_hash(
    workdir: Path,
    database_url: str,
    secret: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "tokens", "add", "audit-team", "--role", "auditor")
    assert code == 0, err
    config = workdir / "idemsync.toml"
    assert f"created {config} as a copy of the shipped" in out
    tokens = TOKEN.findall(out)
    assert len(tokens) == 1
    token = tokens[0]
    assert out.count(token) == 1
    assert "will not be shown again" in out
    assert "Restart running `idemsync serve`" in out

    text = config.read_text()
    assert token not in text
    assert token.removeprefix("idm_") not in text
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert f'[tokens.audit-team]\nrole = "auditor"\nsha256 = "{digest}"\n' in text
    assert text.startswith(EXAMPLE_CONFIG.read_text())  # comments survive

    environ = {"IDEMSYNC_DATABASE_URL": database_url, "IDEMSYNC_DEMO_SECRET": secret}
    settings = load_settings(config, environ)
    assert settings.tokens["audit-team"].role is Role.AUDITOR
    with TestClient(create_app(settings)) as client:
        bearer = {"authorization": f"Bearer {token}"}
        assert client.get("/views/revenue", headers=bearer).status_code == 200
        assert client.get("/admin/projections", headers=bearer).status_code == 403
        wrong = {"authorization": f"Bearer {token}x"}
        assert client.get("/views/revenue", headers=wrong).status_code == 401


def test_tokens_add_appends_to_idemsync_config_and_refuses_a_taken_name(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "mine.toml"
    original = "# my configuration\n[server]\nretry_after_seconds = 5"  # no newline
    config.write_text(original)
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)

    assert run(capsys, "tokens", "add", "ops", "--role", "admin")[0] == 0
    assert run(capsys, "tokens", "add", "ci_1", "--role", "reader")[0] == 0
    assert not (tmp_path / "idemsync.toml").exists()
    text = config.read_text()
    assert text.startswith(original + "\n")
    tokens = load_settings(config, {}, resolve_secrets=False).tokens
    assert {name: t.role for name, t in tokens.items()} == {
        "ops": Role.ADMIN,
        "ci_1": Role.READER,
    }

    code, out, err = run(capsys, "tokens", "add", "ops", "--role", "reader")
    assert code == 2
    assert "already has a token named 'ops'" in err
    assert not TOKEN.search(out + err)
    assert config.read_text() == text

    code, out, err = run(capsys, "tokens", "list")
    assert code == 0
    assert re.search(r"^ops\s+admin$", out, re.MULTILINE)
    assert re.search(r"^ci_1\s+reader$", out, re.MULTILINE)
    for token in tokens.values():
        assert token.sha256 not in out


@pytest.mark.parametrize(
    "name", ["ops team", "ops.team", "", "x" * 65, "ops]\n[server", "ops\n", "tëam"]
)
def test_tokens_add_refuses_a_name_that_is_not_a_bare_key(
    workdir: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = run(capsys, "tokens", "add", name, "--role", "reader")
    assert code == 2
    assert "invalid token name" in err
    assert not TOKEN.search(out + err)
    assert not (workdir / "idemsync.toml").exists()


def test_tokens_add_refuses_an_unknown_role(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["tokens", "add", "ops", "--role", "root"])
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_tokens_add_leaves_a_file_unchanged_when_the_table_would_not_parse(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "inline.toml"
    config.write_text("tokens = {}\n")  # an inline table cannot be extended
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(config))
    code, out, err = run(capsys, "tokens", "add", "ops", "--role", "admin")
    assert code == 2
    assert f"{config}: would not parse with the new table, left unchanged" in err
    assert not TOKEN.search(out + err)
    assert config.read_text() == "tokens = {}\n"
    assert list(tmp_path.iterdir()) == [config]


def test_tokens_list_without_tokens_says_so(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "tokens", "list")
    assert code == 0
    assert "no tokens" in out
