"""Where a delivery's idempotency key is found (``KeyFinder``): the scheme's own
place, a configured header or body path, and the opt-in body-hash fallback."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest
from starlette.datastructures import Headers

from infrastructure.schemes.keys import MAX_KEY_LENGTH, KeyFinder

EVENT = {
    "id": "evt_1PqR8sLkdIwHu7ixXo2Yc9Bz",
    "type": "charge.refunded",
    "data": {"object": {"id": "ch_3PqR8sLkdIwHu7ix0aBcDeFg", "amount": 12500}},
}
BODY = json.dumps(EVENT).encode()


class SchemeKey:
    """A scheme whose own key is the ``x-scheme-key`` header, not signed."""

    key_is_signed = False

    def key(self, headers: Mapping[str, str], body: bytes) -> str | None:
        return headers.get("x-scheme-key") or None


def finder(location: str | None = None, fallback: str = "none") -> KeyFinder:
    return KeyFinder("acme", SchemeKey(), location, fallback)


def body_with(value: Any, *path: str) -> bytes:
    document: Any = value
    for name in reversed(path):
        document = {name: document}
    return json.dumps(document).encode()


def body_hash(source: str, body: bytes) -> str:
    return "sha256:" + hashlib.sha256(source.encode() + b"\0" + body).hexdigest()


# -- the scheme's own key --------------------------------------------------------------


def test_without_a_location_the_schemes_own_key_is_used() -> None:
    assert finder()({"x-scheme-key": "k-1"}, BODY) == "k-1"
    assert finder()({}, BODY) is None


def test_a_configured_location_replaces_the_schemes_own_key() -> None:
    headers = {"x-scheme-key": "scheme's", "x-request-id": "configured"}
    assert finder("header:X-Request-Id")(headers, BODY) == "configured"
    assert finder("body:$.id")(headers, BODY) == EVENT["id"]
    assert finder("header:X-Request-Id")({"x-scheme-key": "scheme's"}, BODY) is None


# -- header: ---------------------------------------------------------------------------


@pytest.mark.parametrize("configured", ["X-Request-Id", "x-request-id", "X-REQUEST-ID"])
def test_a_header_location_is_case_insensitive(configured: str) -> None:
    find = finder(f"header:{configured}")
    assert find({"x-request-id": "req_8Hk2"}, BODY) == "req_8Hk2"
    for sent in ("X-Request-Id", "x-request-id", "X-REQUEST-ID"):
        assert find(Headers(headers={sent: "req_8Hk2"}), BODY) == "req_8Hk2"


def test_a_missing_or_empty_header_is_no_key() -> None:
    find = finder("header:X-Request-Id")
    assert find({}, BODY) is None
    assert find({"x-request-id": ""}, BODY) is None
    assert find({"x-other-id": "req_8Hk2"}, BODY) is None


# -- body: -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "body", "key"),
    [
        ("body:$.id", BODY, "evt_1PqR8sLkdIwHu7ixXo2Yc9Bz"),
        ("body:$.data.object.id", BODY, "ch_3PqR8sLkdIwHu7ix0aBcDeFg"),
        ("body:$.id", body_with(820982911946154508, "id"), "820982911946154508"),
        ("body:$.id", body_with(0, "id"), "0"),
        ("body:$.id", body_with(-7, "id"), "-7"),
        ("body:$.data.object.id", body_with(42, "data", "object", "id"), "42"),
        ("body:$.id", '{"id": "ключ-1"}'.encode(), "ключ-1"),
    ],
    ids=[
        "top-string",
        "nested-string",
        "top-int",
        "zero",
        "negative",
        "nested-int",
        "utf8",
    ],
)
def test_a_body_location_reads_a_string_or_an_integer(
    location: str, body: bytes, key: str
) -> None:
    assert finder(location)({}, body) == key


@pytest.mark.parametrize(
    "value",
    [True, False, None, 1.5, "", {"id": "x"}, ["evt_1"], []],
    ids=["true", "false", "null", "float", "empty", "object", "list", "empty-list"],
)
@pytest.mark.parametrize("path", [("id",), ("data", "object", "id")], ids=".".join)
def test_a_body_value_that_is_not_a_string_or_integer_is_no_key(
    value: Any, path: tuple[str, ...]
) -> None:
    location = "body:$." + ".".join(path)
    assert finder(location)({}, body_with(value, *path)) is None


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b'{"data": {}}',
        b'{"data": {"object": "ch_1"}}',
        b'{"data": ["object"]}',
        b'{"data": null}',
        b'["data"]',
        b'"data"',
    ],
)
def test_a_missing_body_path_is_no_key(body: bytes) -> None:
    assert finder("body:$.data.object.id")({}, body) is None


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"id=evt_1", b'{"id": "evt_1"', b"\xff\xfe{}", b"[" * 100_000],
    ids=["empty", "text", "form", "truncated", "not-utf8", "deeply-nested"],
)
def test_a_body_that_is_not_json_has_no_body_key(body: bytes) -> None:
    assert finder("body:$.id")({}, body) is None


# -- length ----------------------------------------------------------------------------


def test_a_key_of_the_maximum_length_is_kept_and_a_longer_one_is_no_key() -> None:
    assert MAX_KEY_LENGTH == 500
    header = finder("header:X-Request-Id")
    body = finder("body:$.id")
    for length, kept in ((MAX_KEY_LENGTH, True), (MAX_KEY_LENGTH + 1, False)):
        key = "k" * length
        assert header({"x-request-id": key}, BODY) == (key if kept else None)
        assert body({}, body_with(key, "id")) == (key if kept else None)
        assert finder()({"x-scheme-key": key}, BODY) == (key if kept else None)


def test_an_over_long_key_is_no_key_even_with_the_body_hash_fallback() -> None:
    find = finder("header:X-Request-Id", fallback="body-hash")
    assert find({"x-request-id": "k" * (MAX_KEY_LENGTH + 1)}, BODY) is None


# -- body-hash fallback ----------------------------------------------------------------


def test_the_body_hash_is_used_only_when_configured() -> None:
    assert finder("header:X-Request-Id")({}, BODY) is None
    assert finder("header:X-Request-Id", fallback="none")({}, BODY) is None
    hashed = finder("header:X-Request-Id", fallback="body-hash")({}, BODY)
    assert hashed == body_hash("acme", BODY)


def test_the_body_hash_is_sha256_of_source_nul_body() -> None:
    key = KeyFinder("shop", SchemeKey(), None, "body-hash")({}, b'{"a": 1}')
    expected = hashlib.sha256(b'shop\x00{"a": 1}').hexdigest()
    assert key == f"sha256:{expected}"
    assert key is not None
    assert len(key) == len("sha256:") + 64


def test_the_body_hash_is_stable_across_calls_and_finders() -> None:
    first = KeyFinder("acme", SchemeKey(), None, "body-hash")
    second = KeyFinder("acme", SchemeKey(), "body:$.missing", "body-hash")
    keys = {first({}, BODY), first({}, BODY), second({}, BODY)}
    assert keys == {body_hash("acme", BODY)}


def test_the_body_hash_differs_per_source() -> None:
    keys = {
        KeyFinder(source, SchemeKey(), None, "body-hash")({}, BODY)
        for source in ("acme", "acme2", "shop")
    }
    assert len(keys) == 3


def test_the_body_hash_cannot_collide_by_moving_bytes_between_source_and_body() -> None:
    one = KeyFinder("ab", SchemeKey(), None, "body-hash")({}, b"c")
    other = KeyFinder("a", SchemeKey(), None, "body-hash")({}, b"bc")
    assert one != other


def test_the_body_hash_differs_per_body_down_to_one_byte() -> None:
    find = finder(fallback="body-hash")
    assert find({}, BODY) != find({}, BODY.replace(b"12500", b"12501"))
    assert find({}, b"{}") != find({}, b"{} ")


def test_the_body_hash_is_not_used_when_a_key_exists() -> None:
    assert finder(fallback="body-hash")({"x-scheme-key": "k-1"}, BODY) == "k-1"
    by_header = finder("header:X-Request-Id", fallback="body-hash")
    assert by_header({"x-request-id": "req_1"}, BODY) == "req_1"
    assert finder("body:$.id", fallback="body-hash")({}, BODY) == EVENT["id"]


def test_the_body_hash_covers_bodies_that_are_not_json() -> None:
    find = finder("body:$.id", fallback="body-hash")
    assert find({}, b"not json") == body_hash("acme", b"not json")
    assert find({}, b"") == body_hash("acme", b"")


class SignedSchemeKey(SchemeKey):
    """A scheme whose own key the signature covers (as Standard Webhooks)."""

    key_is_signed = True


def test_an_unsigned_key_gives_the_delivery_a_fingerprint_of_the_signed_bytes() -> None:
    found = finder()
    first = found.fingerprint(b"signed bytes")
    assert first is not None and first.startswith("sha256:")
    assert found.fingerprint(b"signed bytes") == first
    assert found.fingerprint(b"other bytes") != first
    assert finder("header:X-Request-Id").fingerprint(b"signed bytes") == first


def test_a_signed_key_needs_no_fingerprint() -> None:
    assert finder("body:$.id").fingerprint(b"signed bytes") is None
    signed = KeyFinder("acme", SignedSchemeKey())
    assert signed.fingerprint(b"signed bytes") is None
    # Configured to read another header, the key is no longer the signed one.
    moved = KeyFinder("acme", SignedSchemeKey(), "header:X-Request-Id")
    assert moved.fingerprint(b"signed bytes") is not None
