"""The ``github`` mapping (specification §11): every GitHub event, read
from GitHub's own example payloads, is ``ignored`` naming its event; a body
that is not a JSON object is refused naming the field path; and the test
signing of those payloads is GitHub's, checked against its published example."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from domain.commands import Ignored
from infrastructure.mappings import InvalidPayload, load_mapping
from infrastructure.schemes.github import GitHub
from tests.github_examples import Example, examples, github_headers, github_signature

SECRET = "a-github-webhook-secret-of-32-bytes"
map_github = load_mapping("github")


def test_the_test_signing_gives_the_signature_githubs_docs_publish() -> None:
    """ "Validating webhook deliveries": this secret and payload give this
    signature."""
    signature = github_signature("It's a Secret to Everybody", b"Hello, World!")
    assert signature == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_every_vendored_example_is_an_event_the_tests_know() -> None:
    assert sorted(example.event for example in examples()) == [
        "issues",
        "ping",
        "pull_request",
        "push",
    ]


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.event)
def test_each_signed_example_verifies_with_the_github_scheme(example: Example) -> None:
    headers = github_headers(SECRET, example.body, example.event)
    assert GitHub([SECRET]).verify(headers, example.body, 0) == example.body


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.event)
def test_each_example_is_ignored_with_its_event_name_as_the_reason(
    example: Example,
) -> None:
    mapped = map_github(
        example.body, github_headers(SECRET, example.body, example.event)
    )
    assert mapped == Ignored(
        f"github event {example.event!r} has no mapping; "
        'bring one (mapping = "package.module:function")'
    )


def test_an_event_without_its_event_header_is_ignored_saying_so() -> None:
    body = examples()[0].body
    mapped = map_github(body, github_headers(SECRET, body, None))
    assert isinstance(mapped, Ignored)
    assert mapped.reason.startswith("no X-GitHub-Event header")


def test_a_form_encoded_delivery_is_refused_saying_to_choose_application_json() -> None:
    body = b"payload=" + quote(examples()[0].body).encode()
    headers = github_headers(
        SECRET, body, "ping", content_type="application/x-www-form-urlencoded"
    )
    with pytest.raises(InvalidPayload) as refused:
        map_github(body, headers)
    assert refused.value.path == "$"
    assert "application/json" in refused.value.message


def test_a_form_encoded_body_is_refused_whatever_content_type_it_claims() -> None:
    body = b"payload=" + quote('{"zen": "x"}').encode()
    with pytest.raises(InvalidPayload, match="application/json"):
        map_github(body, github_headers(SECRET, body, "ping"))


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"[]", "$"),
        (b'"ping"', "$"),
        (b"null", "$"),
        (b"{not json", "$"),
        (b'{"zen": "a", "zen": "b"}', "$.zen"),
        (b'{"zen": "\xff"}', "$"),
    ],
)
def test_a_body_that_is_not_one_json_object_is_refused_with_its_path(
    body: bytes, path: str
) -> None:
    with pytest.raises(InvalidPayload) as refused:
        map_github(body, github_headers(SECRET, body, "push"))
    assert refused.value.path == path
