"""Loading and validating the TOML configuration (specification §2, §3)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from infrastructure.settings import (
    EXAMPLE_CONFIG,
    ConfigError,
    SourceSettings,
    config_path,
    load_settings,
)

DEMO_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW_SECRET = "whsec_" + base64.b64encode(b"the new acme signing key").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the old acme signing key").decode()
ACME = """
[sources.acme]
scheme = "standard-webhooks"
secrets = ["env:ACME_SECRET", "env:ACME_SECRET_PREVIOUS"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "idemsync.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    env = {"ACME_SECRET": NEW_SECRET, "ACME_SECRET_PREVIOUS": OLD_SECRET}
    with pytest.raises(ConfigError) as refused:
        load_settings(write(tmp_path, text), env if environ is None else environ)
    return str(refused.value)


def test_the_shipped_example_loads_with_the_demo_secret_set() -> None:
    settings = load_settings(EXAMPLE_CONFIG, {"IDEMSYNC_DEMO_SECRET": DEMO_SECRET})
    assert settings.database_url == "sqlite:///var/idemsync.db"
    assert settings.config_path == EXAMPLE_CONFIG
    assert settings.sources["demo"] == SourceSettings(
        name="demo",
        scheme="standard-webhooks",
        secrets=(DEMO_SECRET,),
        tolerance_seconds=300,
        mapping="standard",
        max_body_bytes=1_048_576,
        retention_days=30,
    )


def test_the_example_without_the_demo_secret_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="IDEMSYNC_DEMO_SECRET is not set"):
        load_settings(EXAMPLE_CONFIG, {})


def test_env_references_resolve_in_order(tmp_path: Path) -> None:
    environ = {"ACME_SECRET": NEW_SECRET, "ACME_SECRET_PREVIOUS": OLD_SECRET}
    settings = load_settings(write(tmp_path, ACME), environ)
    assert settings.sources["acme"].secrets == (NEW_SECRET, OLD_SECRET)


def test_resolved_secrets_never_appear_in_the_repr(tmp_path: Path) -> None:
    environ = {"ACME_SECRET": NEW_SECRET, "ACME_SECRET_PREVIOUS": OLD_SECRET}
    settings = load_settings(write(tmp_path, ACME), environ)
    assert "whsec_" not in repr(settings)


def test_defaults_apply_when_the_file_is_silent(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {})
    assert settings.database_url == "sqlite:///var/idemsync.db"
    assert settings.sources == {}
    assert (settings.database.lock_timeout_seconds, settings.database.pool_size) == (
        5.0,
        10,
    )
    assert settings.server.retry_after_seconds == 2


def test_database_and_server_values_are_read(tmp_path: Path) -> None:
    text = """
[database]
url = "postgresql://postgres@127.0.0.1:5432/idemsync"
lock_timeout_seconds = 2
pool_size = 4
[server]
retry_after_seconds = 7
"""
    settings = load_settings(write(tmp_path, text), {})
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5432/idemsync"
    assert settings.database.lock_timeout_seconds == 2.0
    assert (settings.database.pool_size, settings.server.retry_after_seconds) == (4, 7)


def test_the_request_head_bounds_default_and_are_read(tmp_path: Path) -> None:
    defaults = load_settings(write(tmp_path, ""), {})
    assert (defaults.server.max_header_bytes, defaults.server.max_headers) == (
        16384,
        100,
    )
    assert defaults.server.header_timeout_seconds == 10.0
    text = """
[server]
max_header_bytes = 8192
max_headers = 50
header_timeout_seconds = 2.5
"""
    settings = load_settings(write(tmp_path, text), {})
    assert (settings.server.max_header_bytes, settings.server.max_headers) == (8192, 50)
    assert settings.server.header_timeout_seconds == 2.5


def test_the_database_url_from_the_environment_wins_over_the_file(
    tmp_path: Path,
) -> None:
    text = '[database]\nurl = "sqlite:///file.db"\n'
    environ = {"IDEMSYNC_DATABASE_URL": "postgresql://db/idemsync"}
    settings = load_settings(write(tmp_path, text), environ)
    assert settings.database_url == "postgresql://db/idemsync"


def test_a_none_scheme_needs_no_secrets(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, '[sources.dev]\nscheme = "none"\nmapping = "standard"\n'), {}
    )
    assert settings.sources["dev"].secrets == ()


def test_the_config_path_comes_from_idemsync_config() -> None:
    assert config_path({"IDEMSYNC_CONFIG": "/etc/idemsync.toml"}) == Path(
        "/etc/idemsync.toml"
    )


def test_the_config_path_is_the_local_file_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config_path({}) == EXAMPLE_CONFIG
    write(tmp_path, "")
    assert config_path({}) == tmp_path / "idemsync.toml"


def test_load_settings_reads_idemsync_config_from_the_environ(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nretry_after_seconds = 9\n")
    settings = load_settings(environ={"IDEMSYNC_CONFIG": str(path)})
    assert (settings.config_path, settings.server.retry_after_seconds) == (path, 9)


SOURCE_ERRORS = [
    (
        ACME + 'colour = "blue"\n',
        "sources.acme.colour: unknown key",
    ),
    (
        ACME.replace('"standard-webhooks"', '"carrier-pigeon"'),
        "sources.acme.scheme: unknown scheme 'carrier-pigeon'",
    ),
    (
        '[sources.acme]\nsecrets = ["env:ACME_SECRET"]\n',
        "sources.acme.scheme: required",
    ),
    (
        ACME.replace('"standard-webhooks"', "7"),
        "sources.acme.scheme: expected a non-empty string",
    ),
    (
        '[sources.acme]\nscheme = "stripe"\nsecrets = []\n',
        "sources.acme.secrets: at least one secret is required for stripe",
    ),
    (
        '[sources.acme]\nscheme = "github"\n',
        "sources.acme.secrets: at least one secret is required for github",
    ),
    (
        '[sources.acme]\nscheme = "github"\nsecrets = "env:ACME_SECRET"\n',
        "sources.acme.secrets: expected a list",
    ),
    (
        '[sources.acme]\nscheme = "github"\nsecrets = ["env:ACME_SECRET", 3]\n',
        "sources.acme.secrets[1]: expected a string",
    ),
    (
        '[sources.acme]\nscheme = "github"\nsecrets = ["whsec_literal"]\n',
        "sources.acme.secrets[0]: secrets are never written in the file; use env:NAME",
    ),
    (
        '[sources.acme]\nscheme = "github"\nsecrets = ["env:"]\n',
        "sources.acme.secrets[0]: env: needs a variable name",
    ),
    (
        '[sources.acme]\nscheme = "github"\n'
        'secrets = ["env:ACME_SECRET", "env:ACME_SECRET_NEXT"]\n',
        "sources.acme.secrets[1]: environment variable ACME_SECRET_NEXT is not set",
    ),
    (
        ACME + "tolerance_seconds = 0\n",
        "sources.acme.tolerance_seconds: expected a positive integer",
    ),
    (
        ACME + 'max_body_bytes = "1MB"\n',
        "sources.acme.max_body_bytes: expected a positive integer",
    ),
    (
        ACME + "retention_days = true\n",
        "sources.acme.retention_days: expected a positive integer",
    ),
    (
        ACME + "retention_days = 1.5\n",
        "sources.acme.retention_days: expected a positive integer",
    ),
    (
        ACME + 'mapping = "not a module path"\n',
        "sources.acme.mapping: expected a built-in name",
    ),
    (
        '[sources.Acme]\nscheme = "none"\nmapping = "standard"\n',
        "sources.Acme: source names match",
    ),
    (
        '[sources."-acme"]\nscheme = "none"\nmapping = "standard"\n',
        "sources.-acme: source names match",
    ),
    (
        '[sources]\nacme = "standard-webhooks"\n',
        "sources.acme: expected a table",
    ),
]


@pytest.mark.parametrize(("text", "message"), SOURCE_ERRORS)
def test_each_source_error_names_the_source_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    assert error_for(tmp_path, text).startswith(message)


def test_an_empty_environment_variable_is_refused(tmp_path: Path) -> None:
    environ = {"ACME_SECRET": "", "ACME_SECRET_PREVIOUS": OLD_SECRET}
    assert error_for(tmp_path, ACME, environ) == (
        "sources.acme.secrets[0]: environment variable ACME_SECRET is empty"
    )


def test_error_messages_never_contain_a_secret_value(tmp_path: Path) -> None:
    environ = {"ACME_SECRET": NEW_SECRET, "ACME_SECRET_PREVIOUS": OLD_SECRET}
    message = error_for(tmp_path, ACME + "retention_days = 0\n", environ)
    assert NEW_SECRET.removeprefix("whsec_")[:12] not in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[sinks.x]\nurl = "y"\n', "sinks: unknown table"),
        ('database = "sqlite:///x.db"\n', "database: expected a table"),
        ('[database]\nuri = "sqlite:///x.db"\n', "database.uri: unknown key"),
        ("[database]\nurl = 5\n", "database.url: expected a non-empty string"),
        (
            "[database]\npool_size = -1\n",
            "database.pool_size: expected a positive integer",
        ),
        (
            '[database]\nlock_timeout_seconds = "5s"\n',
            "database.lock_timeout_seconds: expected a positive number",
        ),
        (
            "[database]\nlock_timeout_seconds = nan\n",
            "database.lock_timeout_seconds: expected a positive number",
        ),
        (
            "[server]\nretry_after_seconds = 0\n",
            "server.retry_after_seconds: expected a positive integer",
        ),
        ("[server]\nport = 8000\n", "server.port: unknown key"),
        (
            "[server]\nmax_header_bytes = 0\n",
            "server.max_header_bytes: expected a positive integer",
        ),
        (
            '[server]\nmax_header_bytes = "16k"\n',
            "server.max_header_bytes: expected a positive integer",
        ),
        (
            "[server]\nmax_headers = -1\n",
            "server.max_headers: expected a positive integer",
        ),
        (
            "[server]\nmax_headers = 10.5\n",
            "server.max_headers: expected a positive integer",
        ),
        (
            "[server]\nmax_headers = true\n",
            "server.max_headers: expected a positive integer",
        ),
        (
            "[server]\nheader_timeout_seconds = 0\n",
            "server.header_timeout_seconds: expected a positive number",
        ),
        (
            "[server]\nheader_timeout_seconds = inf\n",
            "server.header_timeout_seconds: expected a positive number",
        ),
        (
            "[server]\nheader_timeout = 10\n",
            "server.header_timeout: unknown key",
        ),
    ],
)
def test_each_top_level_error_names_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    assert error_for(tmp_path, text).startswith(message)


def test_a_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    message = error_for(tmp_path, "[sources.acme\nscheme = 1\n")
    assert message.startswith(f"{tmp_path / 'idemsync.toml'}: invalid TOML")


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        load_settings(tmp_path / "missing.toml", {})


# -- an unsigned source on PostgreSQL (issue 13) ---------------------------------------

UNSIGNED = '[sources.dev]\nscheme = "none"\nmapping = "standard"\n'
PG_URL = "postgresql://idemsync@db.internal:5432/idemsync"


@pytest.mark.parametrize(
    ("text", "environ"),
    [
        (f'[database]\nurl = "{PG_URL}"\n' + UNSIGNED, {}),
        (UNSIGNED, {"IDEMSYNC_DATABASE_URL": PG_URL}),
        (UNSIGNED, {"IDEMSYNC_DATABASE_URL": "postgres://db/idemsync"}),
        (UNSIGNED + "allow_unsigned = false\n", {"IDEMSYNC_DATABASE_URL": PG_URL}),
    ],
)
def test_a_none_source_on_postgresql_needs_allow_unsigned(
    tmp_path: Path, text: str, environ: dict[str, str]
) -> None:
    """Wherever the URL comes from: the file, or the environment, which wins."""
    message = error_for(tmp_path, text, environ)
    assert message.startswith("sources.dev.allow_unsigned: "), message
    assert "allow_unsigned = true" in message


def test_a_none_source_on_postgresql_with_allow_unsigned_loads(tmp_path: Path) -> None:
    text = UNSIGNED + "allow_unsigned = true\n"
    settings = load_settings(write(tmp_path, text), {"IDEMSYNC_DATABASE_URL": PG_URL})
    assert settings.sources["dev"].allow_unsigned


def test_a_none_source_on_sqlite_needs_no_allow_unsigned(tmp_path: Path) -> None:
    environ = {"IDEMSYNC_DATABASE_URL": "sqlite:///var/dev.db"}
    settings = load_settings(write(tmp_path, UNSIGNED), environ)
    assert not settings.sources["dev"].allow_unsigned
    text = f'[database]\nurl = "{PG_URL}"\n' + UNSIGNED
    assert load_settings(write(tmp_path, text), environ).sources["dev"]


@pytest.mark.parametrize("value", ["true", "false"])
def test_allow_unsigned_is_only_for_scheme_none(tmp_path: Path, value: str) -> None:
    text = ACME + f"allow_unsigned = {value}\n"
    message = error_for(tmp_path, text)
    assert message == "sources.acme.allow_unsigned: only for scheme none"


def test_allow_unsigned_is_true_or_false(tmp_path: Path) -> None:
    message = error_for(tmp_path, UNSIGNED + 'allow_unsigned = "yes"\n')
    assert message == "sources.dev.allow_unsigned: expected true or false"


MASTER = base64.b64encode(bytes(range(32))).decode()
PRIVACY = ACME + '\n[privacy]\nmaster_key = "env:IDEMSYNC_MASTER_KEY"\n'
ACME_ENV = {"ACME_SECRET": NEW_SECRET, "ACME_SECRET_PREVIOUS": OLD_SECRET}


def test_without_a_privacy_table_personal_fields_are_not_sealed(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ACME), ACME_ENV).master_key is None


def test_the_master_key_is_read_from_its_variable_and_never_shown(
    tmp_path: Path,
) -> None:
    environ = {**ACME_ENV, "IDEMSYNC_MASTER_KEY": MASTER}
    settings = load_settings(write(tmp_path, PRIVACY), environ)
    assert settings.master_key is not None
    assert settings.master_key.key == bytes(range(32))
    assert MASTER not in repr(settings)
    assert repr(bytes(range(32))) not in repr(settings)


@pytest.mark.parametrize(
    ("text", "value", "message"),
    [
        (
            PRIVACY,
            None,
            "privacy.master_key: environment variable IDEMSYNC_MASTER_KEY is not set",
        ),
        (
            PRIVACY,
            "not base64!",
            "privacy.master_key: environment variable "
            "IDEMSYNC_MASTER_KEY: a master key is the base64 of 32 bytes",
        ),
        (
            PRIVACY,
            base64.b64encode(b"short").decode(),
            "privacy.master_key: environment variable IDEMSYNC_MASTER_KEY: "
            "a master key is 32 bytes",
        ),
        (
            ACME + '[privacy]\nmaster_key = "c2VjcmV0"\n',
            MASTER,
            "privacy.master_key: keys are never written in the file; use env:NAME",
        ),
        (
            ACME + "[privacy]\nmaster_key = 1\n",
            MASTER,
            'privacy.master_key: expected a string "env:NAME"',
        ),
    ],
)
def test_a_bad_master_key_is_refused_naming_the_key_never_its_value(
    tmp_path: Path, text: str, value: str | None, message: str
) -> None:
    environ = dict(ACME_ENV)
    if value is not None:
        environ["IDEMSYNC_MASTER_KEY"] = value
    error = error_for(tmp_path, text, environ)
    assert error == message
    assert value is None or value not in error
