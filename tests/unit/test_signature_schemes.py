"""Every signature scheme of specification §3, one matrix.

Each scheme is checked with requests signed the way its partner signs them: by
the partners' own libraries where they exist (``standardwebhooks``, ``svix``),
the documented way otherwise, with Stripe's library confirming that the request
is what Stripe sends (and refusing what ours refuses), and GitHub's and
Shopify's published test vectors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks.webhooks
import stripe
import svix.webhooks
from starlette.datastructures import Headers

from infrastructure.schemes import Scheme, Unauthorized, build_scheme
from infrastructure.schemes.github import GitHub
from infrastructure.schemes.shopify import Shopify
from infrastructure.settings import SourceSettings

TOLERANCE = 300
MSG_ID = "msg_2mYgmxVpk6tH1N8Qq3WxXZaVvhB"
GITHUB_DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SHOPIFY_WEBHOOK_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
IDEMPOTENCY_KEY = "4f1c9a7e-2b5d-4e8f-9c3a-1d2e3f4a5b6c"
STRIPE_EVENT_ID = "evt_1PqR8sLkdIwHu7ixXo2Yc9Bz"


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def b64_hmac(secret: str, message: bytes) -> str:
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def moment(at: int) -> datetime:
    return datetime.fromtimestamp(at, UTC)


# -- bodies: what each partner posts (raw bytes, one of them not ASCII) ----------------

STANDARD_BODY = json.dumps(
    {
        "type": "order.paid",
        "timestamp": "2026-11-01T10:00:00Z",
        "data": {"order_id": "ord_1042", "amount_cents": 12500},
    }
).encode()
STRIPE_BODY = json.dumps(
    {
        "id": STRIPE_EVENT_ID,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_730_455_200,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": "ch_3PqR8sLkdIwHu7ix0aBcDeFg",
                "object": "charge",
                "amount": 12500,
                "amount_refunded": 500,
                "currency": "usd",
                "metadata": {"order_id": "ord_1042"},
            }
        },
    },
    indent=2,
).encode()
GITHUB_BODY = json.dumps(
    {
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5",
        "repository": {"id": 1296269, "full_name": "octocat/Hello-World"},
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
    }
).encode()
SHOPIFY_BODY = json.dumps(
    {
        "id": 820982911946154508,
        "email": "zoë.müller@example.com",
        "total_price": "125.00",
        "currency": "EUR",
        "customer": {"first_name": "Zoë", "last_name": "Müller"},
    },
    ensure_ascii=False,
).encode()
HMAC_BODY = b'{"event":"invoice.settled","invoice":{"id":"inv_77","total":"19.99"}}'


# -- how each partner signs ------------------------------------------------------------

Signer = Callable[[str, bytes, int], dict[str, str]]


def standard_signer(prefix: str, library: Callable[[str], Any]) -> Signer:
    def sign(secret: str, body: bytes, at: int) -> dict[str, str]:
        signature = library(secret).sign(MSG_ID, moment(at), body.decode())
        return {
            f"{prefix}-id": MSG_ID,
            f"{prefix}-timestamp": str(at),
            f"{prefix}-signature": signature,
            "content-type": "application/json",
        }

    return sign


def stripe_signature(secret: str, body: bytes, at: int) -> str:
    """Stripe's documented scheme: hex HMAC-SHA256 of ``"{t}.{body}"``, keyed
    with the whole ``whsec_…`` string."""
    return hex_hmac(secret, f"{at}.{body.decode()}".encode())


def sign_stripe(secret: str, body: bytes, at: int) -> dict[str, str]:
    return {
        "stripe-signature": f"t={at},v1={stripe_signature(secret, body, at)}",
        "content-type": "application/json; charset=utf-8",
        "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


def sign_github(secret: str, body: bytes, at: int) -> dict[str, str]:
    return {
        "x-hub-signature-256": "sha256=" + hex_hmac(secret, body),
        "x-github-delivery": GITHUB_DELIVERY,
        "x-github-event": "push",
        "user-agent": "GitHub-Hookshot/044aadd",
    }


def sign_shopify(secret: str, body: bytes, at: int) -> dict[str, str]:
    return {
        "x-shopify-hmac-sha256": b64_hmac(secret, body),
        "x-shopify-webhook-id": SHOPIFY_WEBHOOK_ID,
        "x-shopify-topic": "orders/create",
        "x-shopify-triggered-at": moment(at).isoformat(),
    }


def sign_hmac_hex(secret: str, body: bytes, at: int) -> dict[str, str]:
    return {
        "x-signature": "sha256=" + hex_hmac(secret, body),
        "idempotency-key": IDEMPOTENCY_KEY,
    }


def sign_hmac_base64_timestamped(secret: str, body: bytes, at: int) -> dict[str, str]:
    return {
        "x-acme-signature": b64_hmac(secret, f"{at}.".encode() + body),
        "x-acme-timestamp": str(at),
        "idempotency-key": IDEMPOTENCY_KEY,
    }


def several_standard(first: str, second: str) -> str:
    return f"{first} {second}"


def several_stripe(first: str, second: str) -> str:
    """Two ``t=…,v1=…`` headers with the same ``t`` as one, ``v1`` after ``v1``."""
    timestamp, _, v1_first = first.partition(",")
    _, _, v1_second = second.partition(",")
    return f"{timestamp},{v1_first},{v1_second}"


# -- the cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One scheme as a partner uses it."""

    name: str
    scheme: str
    secret: str
    old_secret: str
    other_secret: str
    body: bytes
    sign: Signer
    signature_header: str
    required: Mapping[str, str]
    """Each header whose absence is refused, with the reason given."""
    malformed: tuple[str, ...]
    """Signature header values that cannot be read; ``{t}`` is the timestamp."""
    key: str
    timestamp_header: str | None = None
    """Where the signed timestamp is, for the schemes that sign one."""
    several: Callable[[str, str], str] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def timestamped(self) -> bool:
        return self.timestamp_header is not None

    def build(self, *secrets: str) -> Scheme:
        return build_scheme(
            SourceSettings(
                name=self.name,
                scheme=self.scheme,
                secrets=secrets or (self.secret,),
                tolerance_seconds=TOLERANCE,
                **self.options,
            )
        )

    def signed(self, at: int, secret: str | None = None) -> dict[str, str]:
        return self.sign(secret or self.secret, self.body, at)


CASES = [
    Case(
        name="standard-webhooks",
        scheme="standard-webhooks",
        secret=whsec(b"the current standard webhooks key"),
        old_secret=whsec(b"the previous standard webhooks key"),
        other_secret=whsec(b"somebody else's key entirely!!"),
        body=STANDARD_BODY,
        sign=standard_signer("webhook", standardwebhooks.webhooks.Webhook),
        signature_header="webhook-signature",
        required={
            "webhook-id": "missing header webhook-id",
            "webhook-timestamp": "missing header webhook-timestamp",
            "webhook-signature": "missing header webhook-signature",
        },
        malformed=("v1", ",c2lnbmF0dXJl", "v1,", "v1,not base64!", "v1,abc"),
        key=MSG_ID,
        timestamp_header="webhook-timestamp",
        several=several_standard,
    ),
    Case(
        name="svix",
        scheme="standard-webhooks",
        secret=whsec(b"the current svix endpoint key"),
        old_secret=whsec(b"the previous svix endpoint key"),
        other_secret=whsec(b"a key svix never gave us"),
        body=STANDARD_BODY,
        sign=standard_signer("svix", svix.webhooks.Webhook),
        signature_header="svix-signature",
        # The scheme names the Standard Webhooks header, of which svix-* is the
        # alias (signing.required reports the first name it looked for).
        required={
            "svix-id": "missing header webhook-id",
            "svix-timestamp": "missing header webhook-timestamp",
            "svix-signature": "missing header webhook-signature",
        },
        malformed=("v1", ",c2lnbmF0dXJl", "v1,not base64!", "v1,abc"),
        key=MSG_ID,
        timestamp_header="svix-timestamp",
        several=several_standard,
    ),
    Case(
        name="stripe",
        scheme="stripe",
        secret="whsec_4eC39HqLyjWDarjtT1zdp7dcCurrentSecret",
        old_secret="whsec_8fJ2kLmNpQrStUvWxYz0123PreviousSecret",
        other_secret="whsec_notOursAtAll0000000000000000000000",
        body=STRIPE_BODY,
        sign=sign_stripe,
        signature_header="stripe-signature",
        required={"stripe-signature": "missing header stripe-signature"},
        malformed=("t={t},v1=xyz", "t={t},v1=abc", "t={t},v1", "t={t},v1=zz"),
        key=STRIPE_EVENT_ID,
        timestamp_header="stripe-signature",
        several=several_stripe,
    ),
    Case(
        name="github",
        scheme="github",
        secret="It's a Secret to Everybody",
        old_secret="It was a Secret to Everybody",
        other_secret="not the repository's secret",
        body=GITHUB_BODY,
        sign=sign_github,
        signature_header="x-hub-signature-256",
        required={"x-hub-signature-256": "missing header x-hub-signature-256"},
        malformed=(
            "sha256",
            "sha256=xyz",
            "sha256=abc",
            "sha1=" + "0" * 40,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
        key=GITHUB_DELIVERY,
    ),
    Case(
        name="shopify",
        scheme="shopify",
        secret="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",
        old_secret="shpss_11111111111111111111111111111111",
        other_secret="shpss_99999999999999999999999999999999",
        body=SHOPIFY_BODY,
        sign=sign_shopify,
        signature_header="x-shopify-hmac-sha256",
        required={"x-shopify-hmac-sha256": "missing header x-shopify-hmac-sha256"},
        malformed=("not base64!", "abc", "%%%%"),
        key=SHOPIFY_WEBHOOK_ID,
    ),
    Case(
        name="hmac-hex",
        scheme="hmac-sha256",
        secret="s3cr3t-current",
        old_secret="s3cr3t-previous",
        other_secret="s3cr3t-someone-else",
        body=HMAC_BODY,
        sign=sign_hmac_hex,
        signature_header="x-signature",
        required={"x-signature": "missing header x-signature"},
        malformed=("0" * 64, "sha256=xyz", "sha256=abc", "sha512=" + "0" * 64),
        key=IDEMPOTENCY_KEY,
        options={"signature_header": "x-signature", "signature_prefix": "sha256="},
    ),
    Case(
        name="hmac-base64-timestamp",
        scheme="hmac-sha256",
        secret="acme-current-signing-key",
        old_secret="acme-previous-signing-key",
        other_secret="acme-unknown-signing-key",
        body=HMAC_BODY,
        sign=sign_hmac_base64_timestamped,
        signature_header="x-acme-signature",
        required={
            "x-acme-signature": "missing header x-acme-signature",
            "x-acme-timestamp": "missing header x-acme-timestamp",
        },
        malformed=("not base64!", "abc", "sha256=" + "A" * 44),
        key=IDEMPOTENCY_KEY,
        timestamp_header="x-acme-timestamp",
        options={
            "signature_header": "x-acme-signature",
            "signature_encoding": "base64",
            "timestamp_header": "x-acme-timestamp",
        },
    ),
]
TIMESTAMPED = [case for case in CASES if case.timestamped]
UNTIMESTAMPED = [case for case in CASES if not case.timestamped]
SEVERAL = [case for case in CASES if case.several is not None]
BY_NAME = {case.name: case for case in CASES}


def cases(selection: list[Case]) -> Any:
    return pytest.mark.parametrize("case", selection, ids=lambda case: case.name)


@pytest.fixture
def now() -> int:
    """Real time, whole seconds: Stripe's library checks against its own clock."""
    return int(time.time())


def refusal(scheme: Scheme, headers: Mapping[str, str], body: bytes, now: float) -> str:
    with pytest.raises(Unauthorized) as refused:
        scheme.verify(headers, body, now)
    return refused.value.reason


def stripe_accepts(case: Case, headers: Mapping[str, str], body: bytes) -> None:
    """What we are about to verify is what Stripe sends: its library takes it."""
    if case.scheme == "stripe":
        event = stripe.Webhook.construct_event(
            body.decode(), headers["stripe-signature"], case.secret
        )
        assert event.id == STRIPE_EVENT_ID


def stripe_refuses(
    case: Case, headers: Mapping[str, str], body: bytes, secret: str | None = None
) -> None:
    """Stripe's own library refuses it too."""
    if case.scheme == "stripe":
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(
                body.decode(), headers["stripe-signature"], secret or case.secret
            )


def tamper(body: bytes) -> bytes:
    """``body`` with its first ASCII digit changed: still JSON, one byte off."""
    at = next(index for index, byte in enumerate(body) if 0x30 <= byte <= 0x39)
    changed = b"1" if body[at : at + 1] != b"1" else b"2"
    return body[:at] + changed + body[at + 1 :]


def with_timestamp(case: Case, headers: dict[str, str], value: str) -> dict[str, str]:
    """``headers`` with the signed timestamp replaced by ``value`` (unsigned)."""
    assert case.timestamp_header is not None
    if case.scheme == "stripe":
        _, _, rest = headers["stripe-signature"].partition(",")
        return {**headers, "stripe-signature": f"t={value},{rest}"}
    return {**headers, case.timestamp_header: value}


# -- accepted --------------------------------------------------------------------------


@cases(CASES)
def test_a_correctly_signed_request_is_accepted(case: Case, now: int) -> None:
    headers = case.signed(now)
    stripe_accepts(case, headers, case.body)
    case.build().verify(headers, case.body, now)


@cases(CASES)
def test_a_correctly_signed_request_is_accepted_in_starlette_headers_as_sent(
    case: Case, now: int
) -> None:
    sent = {name.title(): value for name, value in case.signed(now).items()}
    headers = Headers(headers=sent)
    scheme = case.build()
    scheme.verify(headers, case.body, now)
    assert scheme.key(headers, case.body) == case.key


@cases(CASES)
def test_each_scheme_finds_its_own_default_key(case: Case, now: int) -> None:
    assert case.build().key(case.signed(now), case.body) == case.key


@cases([case for case in CASES if case.scheme != "stripe"])
def test_a_header_scheme_without_its_key_header_has_no_key(
    case: Case, now: int
) -> None:
    headers = case.signed(now)
    for name in ("webhook-id", "svix-id", "x-github-delivery", "x-shopify-webhook-id"):
        headers.pop(name, None)
    headers.pop("idempotency-key", None)
    assert case.build().key(headers, case.body) is None


def test_the_stripe_key_is_the_event_id_in_the_body_not_a_header() -> None:
    scheme = BY_NAME["stripe"].build()
    assert scheme.key({}, STRIPE_BODY) == STRIPE_EVENT_ID
    assert scheme.key({}, b'{"object": "event"}') is None
    assert scheme.key({}, b"not json") is None


# -- refused: body, secret -------------------------------------------------------------


@cases(CASES)
def test_a_tampered_body_is_refused_with_no_matching_signature(
    case: Case, now: int
) -> None:
    headers = case.signed(now)
    tampered = tamper(case.body)
    assert tampered != case.body
    assert len(tampered) == len(case.body)
    stripe_refuses(case, headers, tampered)
    assert refusal(case.build(), headers, tampered, now) == "no matching signature"


@cases(CASES)
def test_a_body_reserialised_by_a_json_middleware_is_refused(
    case: Case, now: int
) -> None:
    headers = case.signed(now)
    reserialised = json.dumps(json.loads(case.body), indent=1).encode()
    assert reserialised != case.body
    assert refusal(case.build(), headers, reserialised, now) == "no matching signature"


@cases(CASES)
def test_a_request_signed_with_another_secret_is_refused(case: Case, now: int) -> None:
    headers = case.signed(now, case.other_secret)
    stripe_refuses(case, headers, case.body)
    assert refusal(case.build(), headers, case.body, now) == "no matching signature"


# -- timestamps ------------------------------------------------------------------------


@cases(TIMESTAMPED)
def test_a_signed_timestamp_older_than_the_tolerance_is_refused(
    case: Case, now: int
) -> None:
    headers = case.signed(now - TOLERANCE - 100)
    stripe_refuses(case, headers, case.body)
    reason = refusal(case.build(), headers, case.body, now)
    assert reason == "timestamp outside tolerance"


@cases(TIMESTAMPED)
def test_a_signed_timestamp_further_in_the_future_than_the_tolerance_is_refused(
    case: Case, now: int
) -> None:
    headers = case.signed(now + TOLERANCE + 100)
    reason = refusal(case.build(), headers, case.body, now)
    assert reason == "timestamp outside tolerance"


@cases(TIMESTAMPED)
def test_the_tolerance_is_inclusive_in_both_directions(case: Case, now: int) -> None:
    scheme = case.build()
    for offset in (-TOLERANCE, TOLERANCE):
        scheme.verify(case.signed(now + offset), case.body, now)
    for offset in (-TOLERANCE - 1, TOLERANCE + 1):
        reason = refusal(scheme, case.signed(now + offset), case.body, now)
        assert reason == "timestamp outside tolerance"


@cases(TIMESTAMPED)
def test_a_timestamp_that_is_not_unix_seconds_is_refused(case: Case, now: int) -> None:
    scheme = case.build()
    for value in ("", "-5", "1.7e9", "2026-11-01T10:00:00Z", "१२३"):
        headers = with_timestamp(case, case.signed(now), value)
        with pytest.raises(Unauthorized):
            scheme.verify(headers, case.body, now)


@cases(TIMESTAMPED)
def test_a_timestamp_of_thousands_of_digits_is_refused_as_unauthorized(
    case: Case, now: int
) -> None:
    headers = with_timestamp(case, case.signed(now), "9" * 5000)
    with pytest.raises(Unauthorized):
        case.build().verify(headers, case.body, now)


@cases(UNTIMESTAMPED)
def test_schemes_that_sign_no_timestamp_have_no_window(case: Case, now: int) -> None:
    headers = case.signed(now)
    scheme = case.build()
    month = 30 * 24 * 3600
    for later in (now - month, now + TOLERANCE + 1, now + month):
        scheme.verify(headers, case.body, later)


# -- missing and malformed headers -----------------------------------------------------


@pytest.mark.parametrize(
    ("case", "header"),
    [(case, header) for case in CASES for header in case.required],
    ids=lambda value: value.name if isinstance(value, Case) else value,
)
@pytest.mark.parametrize("absent", ["removed", "empty"])
def test_each_required_header_missing_is_refused_naming_the_header(
    case: Case, header: str, absent: str, now: int
) -> None:
    headers = case.signed(now)
    if absent == "removed":
        del headers[header]
    else:
        headers[header] = ""
    assert refusal(case.build(), headers, case.body, now) == case.required[header]


def test_a_stripe_signature_without_t_is_refused(now: int) -> None:
    case = BY_NAME["stripe"]
    signature = stripe_signature(case.secret, case.body, now)
    reason = refusal(
        case.build(), {"stripe-signature": f"v1={signature}"}, case.body, now
    )
    assert reason == "missing timestamp in stripe-signature"


@pytest.mark.parametrize(
    ("case", "value"),
    [(case, value) for case in CASES for value in case.malformed],
    ids=lambda value: value.name if isinstance(value, Case) else value[:16],
)
def test_a_malformed_signature_header_is_refused(
    case: Case, value: str, now: int
) -> None:
    headers = {**case.signed(now), case.signature_header: value.format(t=now)}
    reason = refusal(case.build(), headers, case.body, now)
    assert reason == "malformed signature header"


# -- rotation and several signatures ---------------------------------------------------


@cases(CASES)
def test_during_rotation_both_secrets_are_accepted(case: Case, now: int) -> None:
    scheme = case.build(case.secret, case.old_secret)
    for secret in (case.secret, case.old_secret):
        headers = case.signed(now, secret)
        if case.scheme == "stripe":
            stripe.Webhook.construct_event(
                case.body.decode(), headers["stripe-signature"], secret
            )
        scheme.verify(headers, case.body, now)


@cases(CASES)
def test_after_rotation_the_old_secret_is_refused(case: Case, now: int) -> None:
    headers = case.signed(now, case.old_secret)
    stripe_refuses(case, headers, case.body, case.secret)
    reason = refusal(case.build(case.secret), headers, case.body, now)
    assert reason == "no matching signature"


@cases(SEVERAL)
@pytest.mark.parametrize("matching", ["first", "last"])
def test_several_signatures_in_one_header_are_accepted_when_one_matches(
    case: Case, matching: str, now: int
) -> None:
    assert case.several is not None
    right = case.signed(now)[case.signature_header]
    wrong = case.signed(now, case.other_secret)[case.signature_header]
    pair = (right, wrong) if matching == "first" else (wrong, right)
    headers = {**case.signed(now), case.signature_header: case.several(*pair)}
    stripe_accepts(case, headers, case.body)
    case.build().verify(headers, case.body, now)


@cases(SEVERAL)
def test_several_signatures_in_one_header_none_matching_are_refused(
    case: Case, now: int
) -> None:
    assert case.several is not None
    wrong = case.signed(now, case.other_secret)[case.signature_header]
    old = case.signed(now, case.old_secret)[case.signature_header]
    headers = {**case.signed(now), case.signature_header: case.several(wrong, old)}
    stripe_refuses(case, headers, case.body)
    assert refusal(case.build(), headers, case.body, now) == "no matching signature"


def test_a_standard_webhooks_v1a_entry_is_ignored_beside_a_matching_v1(
    now: int,
) -> None:
    case = BY_NAME["standard-webhooks"]
    v1a = "v1a," + base64.b64encode(bytes(64)).decode()
    right = case.signed(now)["webhook-signature"]
    scheme = case.build()
    scheme.verify(
        {**case.signed(now), "webhook-signature": f"{v1a} {right}"}, case.body, now
    )
    reason = refusal(
        scheme, {**case.signed(now), "webhook-signature": v1a}, case.body, now
    )
    assert reason == "no v1 signature"


def test_a_stripe_test_mode_v0_signature_is_ignored(now: int) -> None:
    case = BY_NAME["stripe"]
    v1 = stripe_signature(case.secret, case.body, now)
    header = f"t={now},v1={v1},v0={'6ffbb59b' * 8}"
    stripe_accepts(case, {"stripe-signature": header}, case.body)
    case.build().verify({"stripe-signature": header}, case.body, now)


def test_the_stripe_scheme_keys_with_the_whole_whsec_string() -> None:
    case, at = BY_NAME["stripe"], int(time.time())
    encoded = case.secret.removeprefix("whsec_")
    for wrong_key in (encoded.encode(), base64.b64decode(encoded[:36])):
        wrong = hmac.new(wrong_key, f"{at}.".encode() + case.body, hashlib.sha256)
        header = f"t={at},v1={wrong.hexdigest()}"
        reason = refusal(case.build(), {"stripe-signature": header}, case.body, at)
        assert reason == "no matching signature"


def test_our_stripe_signature_matches_the_one_stripes_library_generates() -> None:
    case, at = BY_NAME["stripe"], 1_730_455_200
    generated = stripe.WebhookSignature.generate_signature_header(
        case.body.decode(), case.secret, timestamp=at
    )
    assert generated == sign_stripe(case.secret, case.body, at)["stripe-signature"]


# -- GitHub's published test vector, and none ------------------------------------------

GITHUB_VECTOR_SECRET = "It's a Secret to Everybody"
GITHUB_VECTOR_PAYLOAD = b"Hello, World!"
GITHUB_VECTOR_SIGNATURE = (
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)


def test_githubs_documented_test_vector_is_accepted(now: int) -> None:
    headers = {"x-hub-signature-256": GITHUB_VECTOR_SIGNATURE}
    GitHub([GITHUB_VECTOR_SECRET]).verify(headers, GITHUB_VECTOR_PAYLOAD, now)
    signed = sign_github(GITHUB_VECTOR_SECRET, GITHUB_VECTOR_PAYLOAD, now)
    assert signed["x-hub-signature-256"] == GITHUB_VECTOR_SIGNATURE


def test_githubs_documented_test_vector_is_refused_with_another_secret(
    now: int,
) -> None:
    headers = {"x-hub-signature-256": GITHUB_VECTOR_SIGNATURE}
    scheme = GitHub(["It's a Secret to Nobody"])
    assert refusal(scheme, headers, GITHUB_VECTOR_PAYLOAD, now) == (
        "no matching signature"
    )
    scheme = GitHub([GITHUB_VECTOR_SECRET])
    assert refusal(scheme, headers, b"Hello, World?", now) == "no matching signature"


# Shopify's own test vector: the secret of shopify-api-js's test configuration, the
# raw body and the expected X-Shopify-Hmac-Sha256 of its webhook validation test.

SHOPIFY_VECTOR_SECRET = "test_secret_key"
SHOPIFY_VECTOR_BODY = b'{"foo": "bar"}'
SHOPIFY_VECTOR_SIGNATURE = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="


def test_shopifys_published_test_vector_is_accepted(now: int) -> None:
    """The triple is Shopify's, from ``Shopify/shopify-api-js`` at commit
    9dd9284376deaca14598e8dc96c90b868e03086b: the body and the expected header
    from ``packages/shopify-api/lib/webhooks/__tests__/validate.test.ts``
    ("returns true for valid request"), the secret (``apiSecretKey``) from
    ``packages/shopify-api/lib/__tests__/test-config.ts``."""
    headers = {"x-shopify-hmac-sha256": SHOPIFY_VECTOR_SIGNATURE}
    Shopify([SHOPIFY_VECTOR_SECRET]).verify(headers, SHOPIFY_VECTOR_BODY, now)
    signed = sign_shopify(SHOPIFY_VECTOR_SECRET, SHOPIFY_VECTOR_BODY, now)
    assert signed["x-shopify-hmac-sha256"] == SHOPIFY_VECTOR_SIGNATURE


def test_shopifys_published_test_vector_is_refused_with_another_secret_or_body(
    now: int,
) -> None:
    headers = {"x-shopify-hmac-sha256": SHOPIFY_VECTOR_SIGNATURE}
    scheme = Shopify(["another_secret_key"])
    assert refusal(scheme, headers, SHOPIFY_VECTOR_BODY, now) == (
        "no matching signature"
    )
    scheme = Shopify([SHOPIFY_VECTOR_SECRET])
    assert refusal(scheme, headers, b'{"foo":"bar"}', now) == "no matching signature"


def test_none_accepts_anything_and_keys_on_idempotency_key(now: int) -> None:
    scheme = build_scheme(SourceSettings(name="dev", scheme="none", secrets=()))
    for headers, body in [
        ({}, b""),
        ({"webhook-signature": "v1,forged"}, b'{"type": "order.paid"}'),
        ({"idempotency-key": "k-1"}, b"\xff\xfe not even utf-8"),
    ]:
        scheme.verify(headers, body, now)
        scheme.verify(headers, body, 0)
    assert scheme.key({"idempotency-key": "k-1"}, b"{}") == "k-1"
    assert scheme.key({"idempotency-key": ""}, b"{}") is None
    assert scheme.key({}, b'{"id": "evt_1"}') is None
