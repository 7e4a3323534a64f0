"""``[sources.NAME]`` as the file has it: each key, its type and default, once.

source_settings.py checks what one key's type cannot say (across keys, per
scheme) and resolves the table into a ``SourceSettings``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from domain.namespaces import NAMESPACE_NAME
from infrastructure.config_fields import FileTable, Flag, PositiveInt, says

KNOWN_SCHEMES = (
    "standard-webhooks",
    "stripe",
    "github",
    "shopify",
    "hmac-sha256",
    "none",
)
MAPPING_NAME = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?\Z")
KEY_LOCATION = re.compile(r"^(header:[A-Za-z0-9_-]+|body:\$(\.[A-Za-z0-9_-]+)+)\Z")
HEADER_NAME = re.compile(r"^[A-Za-z0-9_-]+\Z")
MAX_STORE_HEADERS = 20

HeaderName = Annotated[str, says("expected a header name", pattern=HEADER_NAME.pattern)]


class HmacOptions(FileTable, frozen=True):
    """The keys of ``[sources.NAME]`` only scheme hmac-sha256 takes."""

    signature_header: HeaderName | None = None
    """Required for hmac-sha256; kept in lower case."""
    signature_encoding: Annotated[
        Literal["hex", "base64"], says('expected "hex" or "base64"')
    ] = "hex"
    signature_prefix: Annotated[str, says("expected a string")] = ""
    timestamp_header: HeaderName | None = None
    """When set, the signed content is ``{timestamp}.{body}``."""


class SourceTable(HmacOptions, frozen=True, kw_only=True):
    """``[sources.NAME]`` as the file has it: ``secrets`` are ``env:NAME``
    references, ``mapping`` is None when the table names none."""

    scheme: Annotated[
        str,
        says(
            "expected a non-empty string",
            missing=f"required ({', '.join(KNOWN_SCHEMES)})",
            min_length=1,
        ),
    ]
    secrets: Annotated[
        tuple[Annotated[str, says('expected a string "env:NAME"')], ...],
        says('expected a list of "env:NAME" strings'),
    ] = ()
    tolerance_seconds: PositiveInt = 300
    mapping: (
        Annotated[
            str,
            says(
                "expected a built-in name or 'package.module:function'",
                pattern=MAPPING_NAME.pattern,
            ),
        ]
        | None
    ) = None
    max_body_bytes: PositiveInt = 1_048_576
    retention_days: PositiveInt = 30
    key: (
        Annotated[
            str,
            says(
                'expected "header:NAME" or "body:$.path.to.key"',
                pattern=KEY_LOCATION.pattern,
            ),
        ]
        | None
    ) = None
    """Where the idempotency key is: ``header:NAME`` or ``body:$.path``;
    None for the scheme's own (``webhook-id``, Stripe's ``id``, …)."""
    key_fallback: Annotated[
        Literal["none", "body-hash"], says('expected "none" or "body-hash"')
    ] = "none"
    """``body-hash``: a delivery without a key gets sha256(source, body)."""
    store_headers: Annotated[
        tuple[HeaderName, ...],
        says(
            f"expected a list of at most {MAX_STORE_HEADERS} header names",
            max_length=MAX_STORE_HEADERS,
        ),
    ] = ()
    """Headers (lower case) a delivery record keeps besides the scheme's own,
    e.g. one a custom mapping reads, so that a replay sees it too."""
    clock_skew_seconds: PositiveInt = 86_400
    """How far past this server's clock a partner's event time may be; an
    event later than that is refused (400)."""
    allow_unsigned: Flag = False
    """none only: an unsigned source on PostgreSQL needs it set (settings.py)."""
    namespace: (
        Annotated[
            str,
            says(
                f"namespace names match {NAMESPACE_NAME.pattern}",
                pattern=NAMESPACE_NAME.pattern,
            ),
        ]
        | None
    ) = None
    """The namespace the file names (shared with other sources); None: the
    source's own, ``namespace_of``."""
