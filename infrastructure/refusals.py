"""Why a delivery was refused: nothing of it was stored.

The pipeline (``infrastructure.pipeline``) raises these; it knows nothing of
HTTP. ``web.webhooks`` alone turns each into a status code, and the CLI
into a message. ``error`` is the stable code a partner reads, ``message`` is
for people, ``detail`` only for the log (a signature's reason is never told
to the sender).
"""

from __future__ import annotations

from typing import ClassVar


class Refusal(Exception):
    """A delivery that is not taken. ``path`` and ``mapping``: for a payload
    a mapping could not read, the field at fault and the source's mapping (the
    one that refused it), so that its author knows where to look."""

    error: ClassVar[str]

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        mapping: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.mapping = mapping
        self.detail = detail or message

    def to_json(self) -> dict[str, str]:
        body = {"error": self.error, "message": self.message}
        if self.path is not None:
            body["path"] = self.path
        if self.mapping is not None:
            body["mapping"] = self.mapping
        return body


class UnknownSource(Refusal):
    error = "unknown_source"


class PayloadTooLarge(Refusal):
    error = "payload_too_large"


class Unsigned(Refusal):
    """The signature is missing or does not hold (the reason: ``detail``)."""

    error = "unauthorized"


class MissingKey(Refusal):
    error = "missing_key"


class UnreadablePayload(Refusal):
    """The source's mapping cannot read the body (or it holds what the store
    cannot: a NUL, a time too far ahead)."""

    error = "invalid_payload"


class Busy(Refusal):
    """Too much at once: a retry later will be taken."""

    error = "overloaded"


class StoreUnavailable(Refusal):
    error = "store_unavailable"
