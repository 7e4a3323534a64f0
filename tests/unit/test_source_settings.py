"""The source keys for idempotency keys and the generic HMAC scheme (specification
§3): each error names ``sources.<name>.<key>``, and every scheme builds
from a loaded file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
from pathlib import Path

import pytest

from infrastructure.mappings.shopify import map_shopify
from infrastructure.schemes import build_scheme
from infrastructure.schemes.github import GitHub
from infrastructure.schemes.hmac_sha256 import HmacSha256
from infrastructure.schemes.none import Unsigned
from infrastructure.schemes.shopify import Shopify
from infrastructure.schemes.standard_webhooks import StandardWebhooks
from infrastructure.schemes.stripe import Stripe
from infrastructure.settings import (
    DEFAULT_MAPPINGS,
    KNOWN_SCHEMES,
    ConfigError,
    SourceSettings,
    load_settings,
)
from infrastructure.sources import Source

ENVIRON = {
    "PARTNER_SECRET": "partner-signing-key",
    "PARTNER_SECRET_PREVIOUS": "partner-previous-key",
    "ACME_SECRET": "whsec_" + base64.b64encode(b"acme standard webhooks").decode(),
    "STRIPE_SECRET": "whsec_4eC39HqLyjWDarjtT1zdp7dc",
    "GITHUB_SECRET": "It's a Secret to Everybody",
    "SHOPIFY_SECRET": "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",
}
NON_HMAC = [scheme for scheme in KNOWN_SCHEMES if scheme != "hmac-sha256"]
HMAC_KEYS = {
    "signature_header": '"X-Signature"',
    "signature_encoding": '"hex"',
    "signature_prefix": '"sha256="',
    "timestamp_header": '"X-Timestamp"',
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "idemsync.toml"
    path.write_text(text)
    return path


def source(tmp_path: Path, body: str, name: str = "partner") -> SourceSettings:
    settings = load_settings(write(tmp_path, f"[sources.{name}]\n{body}"), ENVIRON)
    return settings.sources[name]


def error_for(tmp_path: Path, body: str, name: str = "partner") -> str:
    with pytest.raises(ConfigError) as refused:
        source(tmp_path, body, name)
    return str(refused.value)


def named_mapping(scheme: str) -> str:
    """The mapping line a source of ``scheme`` needs: none where the scheme
    has a default, else one naming a mapping."""
    return "" if scheme in DEFAULT_MAPPINGS else 'mapping = "standard"\n'


def hmac_source(*lines: str) -> str:
    return "\n".join(
        [
            'scheme = "hmac-sha256"',
            'secrets = ["env:PARTNER_SECRET"]',
            'mapping = "standard"',
            *lines,
        ]
    )


GITHUB = 'scheme = "github"\nsecrets = ["env:GITHUB_SECRET"]\n'


# -- key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "header:X-Id",
        "header:X-Request-Id",
        "header:idempotency_key",
        "body:$.id",
        "body:$.data.object.id",
        "body:$.event-id",
    ],
)
def test_key_accepts_a_header_or_a_body_path(tmp_path: Path, location: str) -> None:
    assert source(tmp_path, GITHUB + f'key = "{location}"').key == location


def test_key_defaults_to_the_schemes_own(tmp_path: Path) -> None:
    settings = source(tmp_path, GITHUB)
    assert settings.key is None
    assert settings.key_fallback == "none"


@pytest.mark.parametrize(
    "location",
    [
        '""',
        '"X-Id"',
        '"header:"',
        '"header:X Id"',
        '"header:X-Id:extra"',
        '"body:id"',
        '"body:$"',
        '"body:$."',
        '"body:$.data..id"',
        '"body:$.data[0].id"',
        '"body:$.id "',
        '"query:id"',
        '"HEADER:X-Id"',
        "42",
        '["header:X-Id"]',
    ],
)
def test_key_refuses_anything_else_naming_the_key(
    tmp_path: Path, location: str
) -> None:
    error = error_for(tmp_path, GITHUB + f"key = {location}")
    assert error.startswith("sources.partner.key:")


@pytest.mark.parametrize("fallback", ["none", "body-hash"])
def test_key_fallback_accepts_none_or_body_hash(tmp_path: Path, fallback: str) -> None:
    settings = source(tmp_path, GITHUB + f'key_fallback = "{fallback}"')
    assert settings.key_fallback == fallback


@pytest.mark.parametrize(
    "fallback", ['""', '"hash"', '"sha256"', '"body_hash"', '"Body-Hash"', "true"]
)
def test_key_fallback_refuses_anything_else_naming_the_key(
    tmp_path: Path, fallback: str
) -> None:
    error = error_for(tmp_path, GITHUB + f"key_fallback = {fallback}")
    assert error.startswith("sources.partner.key_fallback:")


def test_key_and_key_fallback_apply_to_every_scheme(tmp_path: Path) -> None:
    for scheme in KNOWN_SCHEMES:
        secrets = 'secrets = ["env:PARTNER_SECRET"]\n' if scheme != "none" else ""
        extra = 'signature_header = "X-Signature"\n' if scheme == "hmac-sha256" else ""
        if scheme == "standard-webhooks":
            secrets = 'secrets = ["env:ACME_SECRET"]\n'
        text = (
            f'scheme = "{scheme}"\n{secrets}{extra}{named_mapping(scheme)}'
            'key = "header:X-Request-Id"\nkey_fallback = "body-hash"\n'
        )
        settings = source(tmp_path, text)
        assert (settings.key, settings.key_fallback) == (
            "header:X-Request-Id",
            "body-hash",
        )


# -- hmac-sha256 -----------------------------------------------------------------------


def test_hmac_sha256_requires_signature_header(tmp_path: Path) -> None:
    error = error_for(tmp_path, hmac_source())
    assert error.startswith("sources.partner.signature_header:")


def test_hmac_sha256_defaults_to_hex_without_prefix_or_timestamp(
    tmp_path: Path,
) -> None:
    settings = source(tmp_path, hmac_source('signature_header = "X-Signature"'))
    assert settings.signature_header == "x-signature"
    assert settings.signature_encoding == "hex"
    assert settings.signature_prefix == ""
    assert settings.timestamp_header is None


def test_hmac_sha256_reads_every_option_and_lower_cases_header_names(
    tmp_path: Path,
) -> None:
    settings = source(
        tmp_path,
        hmac_source(
            'signature_header = "X-Acme-Signature"',
            'signature_encoding = "base64"',
            'signature_prefix = "v1="',
            'timestamp_header = "X-Acme-Timestamp"',
            "tolerance_seconds = 120",
        ),
    )
    assert settings.signature_header == "x-acme-signature"
    assert settings.signature_encoding == "base64"
    assert settings.signature_prefix == "v1="
    assert settings.timestamp_header == "x-acme-timestamp"
    assert settings.tolerance_seconds == 120


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_signature_encoding_accepts_hex_or_base64(
    tmp_path: Path, encoding: str
) -> None:
    settings = source(
        tmp_path,
        hmac_source('signature_header = "X-Sig"', f'signature_encoding = "{encoding}"'),
    )
    assert settings.signature_encoding == encoding


@pytest.mark.parametrize(
    "encoding", ['""', '"base32"', '"b64"', '"HEX"', '"base64url"', "16"]
)
def test_signature_encoding_refuses_anything_else_naming_the_key(
    tmp_path: Path, encoding: str
) -> None:
    error = error_for(
        tmp_path,
        hmac_source('signature_header = "X-Sig"', f"signature_encoding = {encoding}"),
    )
    assert error.startswith("sources.partner.signature_encoding:")


@pytest.mark.parametrize("header", ["signature_header", "timestamp_header"])
@pytest.mark.parametrize("value", ['""', '"X Signature"', '"X-Sig:"', "7"])
def test_a_header_option_that_is_not_a_header_name_is_refused(
    tmp_path: Path, header: str, value: str
) -> None:
    lines = [f"{header} = {value}"]
    if header != "signature_header":
        lines.append('signature_header = "X-Sig"')
    error = error_for(tmp_path, hmac_source(*lines))
    assert error.startswith(f"sources.partner.{header}:")


def test_signature_prefix_must_be_a_string(tmp_path: Path) -> None:
    error = error_for(
        tmp_path, hmac_source('signature_header = "X-Sig"', "signature_prefix = 1")
    )
    assert error.startswith("sources.partner.signature_prefix:")


def test_hmac_sha256_requires_a_secret(tmp_path: Path) -> None:
    text = (
        'scheme = "hmac-sha256"\nsignature_header = "X-Sig"\nsecrets = []\n'
        'mapping = "standard"\n'
    )
    assert error_for(tmp_path, text).startswith("sources.partner.secrets:")


@pytest.mark.parametrize("scheme", NON_HMAC)
@pytest.mark.parametrize("key", list(HMAC_KEYS))
def test_the_hmac_keys_are_refused_for_other_schemes(
    tmp_path: Path, scheme: str, key: str
) -> None:
    secret = "ACME_SECRET" if scheme == "standard-webhooks" else "PARTNER_SECRET"
    text = (
        f'scheme = "{scheme}"\nsecrets = ["env:{secret}"]\n{named_mapping(scheme)}'
        f"{key} = {HMAC_KEYS[key]}"
    )
    error = error_for(tmp_path, text, name="other")
    assert error.startswith(f"sources.other.{key}:")
    assert "hmac-sha256" in error


def test_an_unknown_source_key_is_refused_naming_it(tmp_path: Path) -> None:
    error = error_for(tmp_path, hmac_source('signature_header = "X"', 'algo = "sha1"'))
    assert error.startswith("sources.partner.algo:")


# -- build_scheme from a loaded file ---------------------------------------------------

EVERY_SCHEME = """
[sources.acme]
scheme = "standard-webhooks"
secrets = ["env:ACME_SECRET"]

[sources.payments]
scheme = "stripe"
secrets = ["env:STRIPE_SECRET"]
mapping = "stripe"
tolerance_seconds = 600

[sources.repo]
scheme = "github"
secrets = ["env:GITHUB_SECRET"]

[sources.shop]
scheme = "shopify"
secrets = ["env:SHOPIFY_SECRET"]
mapping = "tests.plugin_mappings:map_shopify"
key_fallback = "body-hash"

[sources.partner]
scheme = "hmac-sha256"
secrets = ["env:PARTNER_SECRET", "env:PARTNER_SECRET_PREVIOUS"]
signature_header = "X-Partner-Signature"
signature_encoding = "base64"
signature_prefix = "sha256="
timestamp_header = "X-Partner-Timestamp"
key = "body:$.event.id"
mapping = "standard"

[sources.dev]
scheme = "none"
mapping = "standard"
"""
BUILT = {
    "acme": StandardWebhooks,
    "payments": Stripe,
    "repo": GitHub,
    "shop": Shopify,
    "partner": HmacSha256,
    "dev": Unsigned,
}


def test_build_scheme_works_for_every_scheme_from_a_loaded_file(
    tmp_path: Path,
) -> None:
    settings = load_settings(write(tmp_path, EVERY_SCHEME), ENVIRON)
    assert {s.scheme for s in settings.sources.values()} == set(KNOWN_SCHEMES)
    for name, cls in BUILT.items():
        assert isinstance(build_scheme(settings.sources[name]), cls), name


def test_a_loaded_hmac_source_verifies_what_its_partner_signs(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EVERY_SCHEME), ENVIRON)
    scheme = build_scheme(settings.sources["partner"])
    body, at = b'{"event": {"id": "ev_1"}}', 1_730_455_200
    for secret in (ENVIRON["PARTNER_SECRET"], ENVIRON["PARTNER_SECRET_PREVIOUS"]):
        mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256)
        headers = {
            "x-partner-signature": "sha256=" + base64.b64encode(mac.digest()).decode(),
            "x-partner-timestamp": str(at),
        }
        scheme.verify(headers, body, at + 10)


def test_a_loaded_github_source_verifies_githubs_test_vector(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EVERY_SCHEME), ENVIRON)
    signature = (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )
    build_scheme(settings.sources["repo"]).verify(
        {"x-hub-signature-256": signature}, b"Hello, World!", 0
    )


def test_a_standard_webhooks_secret_that_is_not_base64_names_its_index(
    tmp_path: Path,
) -> None:
    """Refused when the file is loaded (its key's length is checked there)."""
    text = 'scheme = "standard-webhooks"\nsecrets = ["env:ACME_SECRET", "env:BAD"]\n'
    environ = {**ENVIRON, "BAD": "whsec_!!not base64!!"}
    with pytest.raises(ConfigError) as refused:
        load_settings(write(tmp_path, f"[sources.acme]\n{text}"), environ)
    message = str(refused.value)
    assert message.startswith("sources.acme.secrets[1]:")
    assert "!!not base64!!" not in message


def test_store_headers_and_clock_skew_have_defaults(tmp_path: Path) -> None:
    partner = source(tmp_path, 'scheme = "github"\nsecrets = ["env:GITHUB_SECRET"]')
    assert partner.store_headers == ()
    assert partner.clock_skew_seconds == 86_400


def test_store_headers_are_header_names_kept_in_lower_case(tmp_path: Path) -> None:
    partner = source(
        tmp_path,
        'scheme = "github"\nsecrets = ["env:GITHUB_SECRET"]\n'
        'store_headers = ["X-Partner-Topic", "x-trace"]\nclock_skew_seconds = 600',
    )
    assert partner.store_headers == ("x-partner-topic", "x-trace")
    assert partner.clock_skew_seconds == 600


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"x-one"', "store_headers: expected a list"),
        ('["bad header"]', "store_headers[0]: expected a header name"),
        ('["Cookie"]', "store_headers[0]: Cookie carries credentials"),
        ('["authorization"]', "carries credentials"),
        (str([f"x-{n}" for n in range(21)]).replace("'", '"'), "at most 20"),
    ],
)
def test_store_headers_refuses_what_it_cannot_keep(
    tmp_path: Path, value: str, message: str
) -> None:
    body = (
        f'scheme = "github"\nsecrets = ["env:GITHUB_SECRET"]\nstore_headers = {value}'
    )
    error = error_for(tmp_path, body)
    assert error.startswith("sources.partner.store_headers")
    assert message in error


# -- weak secrets and absurd tolerances (issue 13) -----------------------------------

SHORT_KEYS = {
    # scheme: (a secret whose key is 15 bytes, one whose key is 16 bytes)
    "standard-webhooks": (
        "whsec_" + base64.b64encode(b"k" * 15).decode(),
        "whsec_" + base64.b64encode(b"k" * 16).decode(),
    ),
    "stripe": ("whsec_123456789", "whsec_1234567890"),
    "github": ("x" * 15, "x" * 16),
    "shopify": ("shpss_" + "9" * 9, "shpss_" + "9" * 10),
    "hmac-sha256": ("é" * 7 + "k", "é" * 8),  # UTF-8 bytes, not characters
}


def scheme_source(scheme: str, *secrets: str) -> str:
    listed = ", ".join(f'"env:{name}"' for name in secrets)
    extra = 'signature_header = "X-Sig"\n' if scheme == "hmac-sha256" else ""
    return f'scheme = "{scheme}"\nsecrets = [{listed}]\n{extra}{named_mapping(scheme)}'


@pytest.mark.parametrize("scheme", list(SHORT_KEYS))
def test_a_secret_whose_key_is_under_16_bytes_is_refused_naming_its_index(
    tmp_path: Path, scheme: str
) -> None:
    weak, strong = SHORT_KEYS[scheme]
    environ = {**ENVIRON, "WEAK": weak, "STRONG": strong}
    path = write(
        tmp_path, f"[sources.partner]\n{scheme_source(scheme, 'STRONG', 'WEAK')}"
    )
    with pytest.raises(ConfigError) as refused:
        load_settings(path, environ)
    message = str(refused.value)
    assert message.startswith("sources.partner.secrets[1]: "), message
    assert "at least 16 bytes" in message
    assert "WEAK" in message
    assert weak not in message
    assert weak.removeprefix("whsec_").removeprefix("shpss_") not in message
    path = write(tmp_path, f"[sources.partner]\n{scheme_source(scheme, 'STRONG')}")
    assert load_settings(path, environ).sources["partner"].secrets == (strong,)


def test_a_one_byte_standard_webhooks_key_says_how_its_bytes_are_counted(
    tmp_path: Path,
) -> None:
    environ = {**ENVIRON, "WEAK": "whsec_" + base64.b64encode(b"k").decode()}
    text = f"[sources.partner]\n{scheme_source('standard-webhooks', 'WEAK')}"
    with pytest.raises(ConfigError) as refused:
        load_settings(write(tmp_path, text), environ)
    assert str(refused.value) == (
        "sources.partner.secrets[0]: the secret in environment variable WEAK is "
        "too short: its key must be at least 16 bytes (base64-decoded after whsec_)"
    )


@pytest.mark.parametrize("seconds", [3601, 86_400, 999_999_999_999])
def test_a_tolerance_above_an_hour_is_refused(tmp_path: Path, seconds: int) -> None:
    error = error_for(tmp_path, GITHUB + f"tolerance_seconds = {seconds}")
    assert error.startswith("sources.partner.tolerance_seconds: at most 3600")


def test_a_tolerance_of_an_hour_is_accepted(tmp_path: Path) -> None:
    assert source(tmp_path, GITHUB + "tolerance_seconds = 3600").tolerance_seconds == (
        3600
    )


# -- the mapping: each scheme's default, no silent fallback (issue 14) -------------

SECRET_OF = {
    "standard-webhooks": "ACME_SECRET",
    "stripe": "STRIPE_SECRET",
    "github": "GITHUB_SECRET",
    "shopify": "SHOPIFY_SECRET",
    "hmac-sha256": "PARTNER_SECRET",
    "none": None,
}


def bare_source(scheme: str) -> str:
    """A valid table of ``scheme`` without a mapping line."""
    variable = SECRET_OF[scheme]
    secrets = f'secrets = ["env:{variable}"]\n' if variable else ""
    extra = 'signature_header = "X-Sig"\n' if scheme == "hmac-sha256" else ""
    return f'scheme = "{scheme}"\n{secrets}{extra}'


@pytest.mark.parametrize(
    ("scheme", "mapping"),
    [
        ("standard-webhooks", "standard"),
        ("stripe", "stripe"),
        ("shopify", "shopify"),
        ("github", "github"),
    ],
)
def test_a_source_without_a_mapping_gets_its_schemes_default_and_says_so(
    tmp_path: Path, scheme: str, mapping: str
) -> None:
    settings = source(tmp_path, bare_source(scheme))
    assert (settings.mapping, settings.mapping_is_default) == (mapping, True)


def test_the_defaults_are_these_four_and_no_other() -> None:
    assert dict(DEFAULT_MAPPINGS) == {
        "standard-webhooks": "standard",
        "stripe": "stripe",
        "shopify": "shopify",
        "github": "github",
    }


def test_a_shopify_source_builds_with_the_built_in_shopify_mapping(
    tmp_path: Path,
) -> None:
    settings = source(tmp_path, bare_source("shopify"))
    built = Source.build(settings)
    assert (settings.mapping, settings.mapping_is_default) == ("shopify", True)
    assert inspect.unwrap(built.mapping) is map_shopify


@pytest.mark.parametrize("scheme", ["hmac-sha256", "none"])
def test_a_generic_or_unsigned_source_without_a_mapping_is_refused_naming_the_key(
    tmp_path: Path, scheme: str
) -> None:
    error = error_for(tmp_path, bare_source(scheme))
    assert error == (
        f"sources.partner.mapping: required for scheme {scheme}: a mapping must "
        'be named (a built-in one, e.g. "standard", or "package.module:function")'
    )


@pytest.mark.parametrize("scheme", KNOWN_SCHEMES)
@pytest.mark.parametrize("mapping", ["standard", "github", "myapp.hooks:map_events"])
def test_a_named_mapping_is_taken_as_named_for_every_scheme(
    tmp_path: Path, scheme: str, mapping: str
) -> None:
    settings = source(tmp_path, bare_source(scheme) + f'mapping = "{mapping}"\n')
    assert (settings.mapping, settings.mapping_is_default) == (mapping, False)


@pytest.mark.parametrize("value", ['""', "7", '"not a module path"'])
def test_a_mapping_that_is_not_a_name_is_refused_even_where_there_is_a_default(
    tmp_path: Path, value: str
) -> None:
    error = error_for(tmp_path, bare_source("github") + f"mapping = {value}\n")
    assert error.startswith("sources.partner.mapping: expected"), error


def test_settings_built_in_code_keep_standard_unless_they_name_another() -> None:
    built = SourceSettings(name="hub", scheme="github", secrets=("s" * 16,))
    assert (built.mapping, built.mapping_is_default) == ("standard", False)


def test_a_mapping_word_that_is_not_built_in_is_refused_when_the_source_is_built(
    tmp_path: Path,
) -> None:
    settings = source(tmp_path, bare_source("shopify") + 'mapping = "magento"\n')
    with pytest.raises(ConfigError) as refused:
        Source.build(settings)
    assert str(refused.value) == (
        "sources.partner.mapping: cannot load 'magento': unknown mapping "
        "'magento': use one of standard, stripe, shopify, github or "
        "'package.module:function'"
    )
