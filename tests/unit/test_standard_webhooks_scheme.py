"""The standard-webhooks scheme against the reference `standardwebhooks` library."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from starlette.datastructures import Headers

from infrastructure.schemes import Unauthorized, build_scheme
from infrastructure.schemes.standard_webhooks import StandardWebhooks, sign
from infrastructure.settings import ConfigError, SourceSettings

SECRET = "whsec_" + base64.b64encode(b"the current secret key bytes").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the previous secret key!").decode()
BODY = b'{"type": "order.paid", "data": {"order_id": "o-1", "amount_cents": 1250}}'
NOW = 1_700_000_000.0


def signed_headers(
    secret: str = SECRET,
    body: bytes = BODY,
    at: float = NOW,
    msg_id: str = "msg_2x7Yq",
    prefix: str = "webhook",
) -> dict[str, str]:
    """Headers as a sender using the reference library would send them."""
    timestamp = datetime.fromtimestamp(at, tz=UTC)
    signature = Webhook(secret).sign(msg_id, timestamp, body.decode())
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(int(at)),
        f"{prefix}-signature": signature,
    }


def reason_for(
    scheme: StandardWebhooks, headers: dict[str, str], body: bytes = BODY
) -> str:
    with pytest.raises(Unauthorized) as refused:
        scheme.verify(headers, body, NOW)
    return refused.value.reason


@pytest.fixture
def scheme() -> StandardWebhooks:
    return StandardWebhooks([SECRET], tolerance_seconds=300)


def test_a_signature_from_the_reference_library_is_accepted(
    scheme: StandardWebhooks,
) -> None:
    scheme.verify(signed_headers(), BODY, NOW)


def test_the_reference_library_accepts_what_it_signed_for_the_same_input() -> None:
    headers = signed_headers(at=time.time())
    Webhook(SECRET).verify(BODY, headers)
    StandardWebhooks([SECRET], 300).verify(headers, BODY, time.time())


def test_a_bare_base64_secret_is_accepted_like_the_reference_library_does() -> None:
    bare = SECRET.removeprefix("whsec_")
    StandardWebhooks([bare], 300).verify(signed_headers(), BODY, NOW)


def test_a_tampered_body_is_refused(scheme: StandardWebhooks) -> None:
    tampered = BODY.replace(b"1250", b"9250")
    assert reason_for(scheme, signed_headers(), tampered) == "no matching signature"


def test_a_re_serialised_body_is_refused(scheme: StandardWebhooks) -> None:
    reserialised = BODY.replace(b": ", b":")
    assert reason_for(scheme, signed_headers(), reserialised) == (
        "no matching signature"
    )


def test_a_signature_made_with_another_secret_is_refused(
    scheme: StandardWebhooks,
) -> None:
    headers = signed_headers(secret=OLD_SECRET)
    assert reason_for(scheme, headers) == "no matching signature"


def test_a_timestamp_older_than_the_tolerance_is_refused(
    scheme: StandardWebhooks,
) -> None:
    headers = signed_headers(at=NOW - 301)
    assert reason_for(scheme, headers) == "timestamp outside tolerance"


def test_a_timestamp_further_in_the_future_than_the_tolerance_is_refused(
    scheme: StandardWebhooks,
) -> None:
    headers = signed_headers(at=NOW + 301)
    assert reason_for(scheme, headers) == "timestamp outside tolerance"


def test_timestamps_at_the_edges_of_the_tolerance_are_accepted(
    scheme: StandardWebhooks,
) -> None:
    scheme.verify(signed_headers(at=NOW - 300), BODY, NOW)
    scheme.verify(signed_headers(at=NOW + 300), BODY, NOW)


@pytest.mark.parametrize("name", ["id", "timestamp", "signature"])
def test_each_missing_header_is_refused_with_its_name(
    scheme: StandardWebhooks, name: str
) -> None:
    headers = signed_headers()
    del headers[f"webhook-{name}"]
    assert reason_for(scheme, headers) == f"missing header webhook-{name}"


@pytest.mark.parametrize("timestamp", ["", "abc", "1700000000.5", "-1700000000"])
def test_a_timestamp_that_is_not_an_integer_is_refused(
    scheme: StandardWebhooks, timestamp: str
) -> None:
    headers = signed_headers() | {"webhook-timestamp": timestamp}
    assert reason_for(scheme, headers) in {
        "invalid timestamp",
        "missing header webhook-timestamp",
    }


@pytest.mark.parametrize("signature", ["v1", "v1,", ",abc", "v1,not*base64", "garbage"])
def test_a_malformed_signature_header_is_refused(
    scheme: StandardWebhooks, signature: str
) -> None:
    headers = signed_headers() | {"webhook-signature": signature}
    assert reason_for(scheme, headers) == "malformed signature header"


def test_a_header_with_only_other_signature_versions_is_refused(
    scheme: StandardWebhooks,
) -> None:
    headers = signed_headers() | {"webhook-signature": "v1a,c2lnbmF0dXJl"}
    assert reason_for(scheme, headers) == "no v1 signature"


def test_both_secrets_are_accepted_during_rotation() -> None:
    rotating = StandardWebhooks([SECRET, OLD_SECRET], tolerance_seconds=300)
    rotating.verify(signed_headers(secret=SECRET), BODY, NOW)
    rotating.verify(signed_headers(secret=OLD_SECRET), BODY, NOW)


def test_the_old_secret_is_refused_once_only_the_new_one_is_configured(
    scheme: StandardWebhooks,
) -> None:
    headers = signed_headers(secret=OLD_SECRET)
    assert reason_for(scheme, headers) == "no matching signature"


def test_svix_headers_are_accepted(scheme: StandardWebhooks) -> None:
    headers = signed_headers(prefix="svix")
    scheme.verify(headers, BODY, NOW)
    assert scheme.key(headers, BODY) == "msg_2x7Yq"


def test_one_matching_signature_among_several_is_enough(
    scheme: StandardWebhooks,
) -> None:
    headers = signed_headers()
    other = signed_headers(secret=OLD_SECRET)["webhook-signature"]
    headers["webhook-signature"] = (
        f"v1a,c2lnbmF0dXJl {other} {headers['webhook-signature']}"
    )
    scheme.verify(headers, BODY, NOW)


def test_the_key_is_the_webhook_id(scheme: StandardWebhooks) -> None:
    assert scheme.key(signed_headers(msg_id="msg_abc"), BODY) == "msg_abc"


def test_the_key_is_none_without_an_id_header(scheme: StandardWebhooks) -> None:
    assert scheme.key({}, BODY) is None


@pytest.mark.parametrize("secret", ["whsec_not*base64", "whsec_", ""])
def test_an_invalid_secret_is_refused_at_construction(secret: str) -> None:
    with pytest.raises(ValueError):
        StandardWebhooks([secret], 300)


def test_build_scheme_names_the_source_and_index_of_an_invalid_secret() -> None:
    source = SourceSettings(
        name="acme", scheme="standard-webhooks", secrets=(SECRET, "whsec_%%")
    )
    with pytest.raises(ConfigError, match=r"^sources\.acme\.secrets\[1\]: "):
        build_scheme(source)


def test_build_scheme_builds_standard_webhooks_from_settings() -> None:
    source = SourceSettings(name="acme", scheme="standard-webhooks", secrets=(SECRET,))
    build_scheme(source).verify(signed_headers(), BODY, NOW)


def test_starlette_headers_with_any_case_are_read(scheme: StandardWebhooks) -> None:
    sent = {name.title(): value for name, value in signed_headers().items()}
    headers = Headers(headers=sent)
    scheme.verify(headers, BODY, NOW)
    assert scheme.key(headers, BODY) == "msg_2x7Yq"


def test_sign_makes_the_signature_of_the_reference_library() -> None:
    expected = signed_headers()["webhook-signature"]
    assert sign(SECRET, "msg_2x7Yq", int(NOW), BODY) == expected
