"""The ``github`` mapping, the default of ``scheme = "github"``: every event
is acknowledged, none is mapped.

GitHub events (``ping``, ``push``, ``issues``, ``pull_request``, …) are not
orders or customers, so there is nothing to map until the user brings a
mapping of their own. Meanwhile each delivery is verified and keyed by the
scheme, recorded with its payload, and answered ``ignored`` with the event
name (``X-GitHub-Event``) as the reason: GitHub sees 2xx, the setup ``ping``
included, and the recorded deliveries can be replayed through the user's
mapping once it exists.

It still refuses (400) a body that is not a JSON object: a webhook whose
content type is ``application/x-www-form-urlencoded`` sends ``payload=<url-
encoded JSON>``, which no mapping reads as JSON, so the user is told to choose
``application/json`` now rather than after their mapping is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from domain.commands import Command, Ignored
from infrastructure.mappings import InvalidPayload, decoding

FORM_ENCODED = "application/x-www-form-urlencoded"
MAX_EVENT_NAME = 100
"""The longest event name repeated in a reason (GitHub's are short)."""
BRING_ONE = 'bring one (mapping = "package.module:function")'


class AnyObject(msgspec.Struct):
    """A JSON object, whatever its fields (msgspec skips them unread)."""


_object_decoder = msgspec.json.Decoder(AnyObject)


def map_github(body: bytes, headers: Mapping[str, str]) -> Sequence[Command] | Ignored:
    """``Ignored`` naming the event, for any JSON object body."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == FORM_ENCODED or body.startswith(b"payload="):
        raise InvalidPayload(
            "GitHub sent the form encoding (payload=...); set the webhook's "
            "Content type to application/json"
        )
    with decoding():
        _object_decoder.decode(body)
    event = headers.get("x-github-event")
    if not event:
        return Ignored(f"no X-GitHub-Event header: not a GitHub event; {BRING_ONE}")
    return Ignored(
        f"github event {event[:MAX_EVENT_NAME]!r} has no mapping; {BRING_ONE}"
    )
