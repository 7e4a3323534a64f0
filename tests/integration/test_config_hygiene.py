"""Configuration hygiene (contract section 10, issue 13) as the commands see
it: ``config check``, ``serve`` and ``tokens add``."""

from __future__ import annotations

from pathlib import Path

import pytest

from idemsync.cli import main

UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:1/nowhere"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def unsigned_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "idemsync.toml"
    path.write_text('[sources.dev]\nscheme = "none"\n')
    path.chmod(0o600)
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(path))
    monkeypatch.chdir(tmp_path)
    return path


@pytest.mark.parametrize("command", [["config", "check"], ["serve"]])
def test_an_unsigned_source_on_postgresql_is_refused_by_config_check_and_serve(
    unsigned_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", UNREACHABLE_PG)
    code, _, err = run(capsys, *command)
    assert code == 2
    assert "configuration error: sources.dev.allow_unsigned: " in err


def test_an_unsigned_source_on_postgresql_with_allow_unsigned_passes_config_check(
    unsigned_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    unsigned_config.write_text(unsigned_config.read_text() + "allow_unsigned = true\n")
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", UNREACHABLE_PG)
    code, out, err = run(capsys, "config", "check")
    assert code == 0, err
    assert "ok; sources: dev" in out


def test_an_unsigned_source_on_sqlite_passes_config_check(
    unsigned_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'dev.db'}")
    code, out, err = run(capsys, "config", "check")
    assert code == 0, err
    assert "ok; sources: dev" in out
