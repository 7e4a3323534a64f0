"""Configuration hygiene (specification §10, issue 13) as the commands see
it: ``config check`` (and ``--strict``), ``serve``, ``tokens add`` and ``db
upgrade``. The rule: a config file or SQLite store that its group or other
users may write, or other users may read, is warned about; ``serve``'s
warning at start is checked over a real process in
``tests/e2e/test_serve_file_modes.py``."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from idemsync.cli import main
from infrastructure.persistence.database import Database
from infrastructure.settings import EXAMPLE_CONFIG, load_settings

UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:1/nowhere"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def unsigned_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "idemsync.toml"
    path.write_text('[sources.dev]\nscheme = "none"\nmapping = "standard"\n')
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


# -- who may read or write the config file and the SQLite store ---------------------

LOOSE_MODES = {
    0o666: "writable by its group and writable by other users and readable by "
    "other users",
    0o644: "readable by other users",
    0o664: "writable by its group and readable by other users",
    0o620: "writable by its group",
    0o602: "writable by other users",
}
TIGHT_MODES = [0o600, 0o640, 0o400, 0o440, 0o700]


def octal(mode: int) -> str:
    return f"{mode:04o}"


@pytest.fixture
def config(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> Path:
    """A configuration file (``IDEMSYNC_CONFIG``) on the test's database."""
    path = tmp_path / "conf" / "idemsync.toml"
    path.parent.mkdir()
    path.write_text("[server]\nretry_after_seconds = 3\n")
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(path))
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    return path


@pytest.mark.parametrize("mode", list(LOOSE_MODES), ids=octal)
def test_config_check_warns_about_a_config_file_others_may_read_or_write(
    config: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    config.chmod(mode)
    code, out, err = run(capsys, "config", "check")
    assert code == 0, err
    assert f"{config}: ok" in out
    assert (
        f"idemsync: warning: configuration file {config} is {LOOSE_MODES[mode]} "
        f"(mode {mode:04o}): chmod g-w,o-rwx {config}"
    ) in err
    code, out, err = run(capsys, "config", "check", "--strict")
    assert code == 1
    assert "refused (--strict): 1 file(s) other users may read or write" in err
    assert "ok" not in out


@pytest.mark.parametrize("mode", TIGHT_MODES, ids=octal)
def test_config_check_is_quiet_about_a_config_file_of_its_owner_and_group(
    config: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    config.chmod(mode)
    code, out, err = run(capsys, "config", "check", "--strict")
    assert (code, err) == (0, "")
    assert f"{config}: ok" in out


def test_config_check_warns_about_a_sqlite_store_and_its_companions(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sqlite_template: Path,
) -> None:
    config = tmp_path / "idemsync.toml"
    config.write_text("")
    config.chmod(0o600)
    store = tmp_path / "var" / "idemsync.db"
    store.parent.mkdir()
    store.write_bytes(sqlite_template.read_bytes())
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(config))
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", f"sqlite:///{store}")
    store.chmod(0o600)
    assert run(capsys, "config", "check", "--strict")[0] == 0
    store.chmod(0o644)
    wal = store.with_name("idemsync.db-wal")
    wal.write_bytes(b"")
    wal.chmod(0o662)
    shm = store.with_name("idemsync.db-shm")
    shm.write_bytes(b"")
    shm.chmod(0o600)
    code, _, err = run(capsys, "config", "check", "--strict")
    assert code == 1
    assert f"SQLite database {store} is readable by other users (mode 0644)" in err
    assert (
        f"SQLite database file {wal} is writable by its group and writable by "
        "other users (mode 0662)"
    ) in err
    assert str(shm) not in err
    assert "refused (--strict): 2 file(s)" in err


def test_db_upgrade_makes_a_sqlite_store_for_its_owner_only(tmp_path: Path) -> None:
    store = tmp_path / "new" / "idemsync.db"
    database = Database(f"sqlite:///{store}")
    database.upgrade()
    database.close()
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


def test_the_shipped_example_is_public_and_not_warned_about_for_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Readable by all (it is in the repository), not writable: no warning."""
    if EXAMPLE_CONFIG.stat().st_mode & 0o022:
        pytest.skip("this checkout's example is group or world writable")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IDEMSYNC_CONFIG", raising=False)
    monkeypatch.setenv("IDEMSYNC_DEMO_SECRET", "whsec_" + "A" * 32)
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", UNREACHABLE_PG)
    code, out, err = run(capsys, "config", "check", "--strict")
    assert (code, err) == (0, "")
    assert f"{EXAMPLE_CONFIG}: ok" in out


# -- tokens add never leaves the file open to others --------------------------------


def test_tokens_add_makes_the_config_file_for_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IDEMSYNC_CONFIG", raising=False)
    code, out, err = run(capsys, "tokens", "add", "ops", "--role", "admin")
    assert code == 0, err
    config = tmp_path / "idemsync.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "(mode 0600)" in out


@pytest.mark.parametrize("mode", list(LOOSE_MODES), ids=octal)
def test_tokens_add_tightens_a_config_file_others_may_read_or_write_and_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: int,
) -> None:
    config = tmp_path / "shared.toml"
    config.write_text("[server]\nretry_after_seconds = 3\n")
    config.chmod(mode)
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(config))
    code, out, err = run(capsys, "tokens", "add", "ops", "--role", "admin")
    assert code == 0, err
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert (
        f"tightened {config} to mode 0600: it was {mode:04o}, {LOOSE_MODES[mode]}"
    ) in out
    assert "ops" in load_settings(config, {}, resolve_secrets=False).tokens


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400], ids=octal)
def test_tokens_add_keeps_a_mode_that_only_its_owner_and_group_share(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mode: int,
) -> None:
    config = tmp_path / "service.toml"
    config.write_text("")
    config.chmod(mode)
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(config))
    code, out, err = run(capsys, "tokens", "add", "ops", "--role", "reader")
    assert code == 0, err
    assert stat.S_IMODE(config.stat().st_mode) == mode
    assert "tightened" not in out
