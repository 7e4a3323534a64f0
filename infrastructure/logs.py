"""Structured logs: one JSON object per line, for machines to read.

``idemsync serve`` logs JSON by default (``--log-format text`` for people).
Each delivery decision is one line of the logger ``idemsync.deliveries``
with its fields (``source``, ``key``, ``outcome``, ``aggregate``,
``version``, ``duration_ms``...). Nothing that reaches a log line carries a
secret, a token or a payload: the fields are chosen here, not dumped, and
the query string of uvicorn's access line is redacted (a client may send a
token there). In either format one record is one line: a partner's key or
id cannot start a forged line.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec

from domain.delivery import Answer

FIELDS = "fields"
"""The ``extra`` key under which a record carries its structured fields."""

decisions = logging.getLogger("idemsync.deliveries")


LINE_BREAKS_LEFT_BY_JSON = str.maketrans(
    {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
"""What msgspec writes as it is but ``str.splitlines`` (and some log viewers)
take for a line break: NEL and the Unicode line and paragraph separators.
They can only occur inside JSON strings, where the escape means the same."""


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields}`` on one line."""

    encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        line.update(getattr(record, FIELDS, None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        text = self.encoder.encode(line).decode()
        return text if text.isascii() else text.translate(LINE_BREAKS_LEFT_BY_JSON)


TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"

BIDI_OVERRIDES = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
CONTROLS = str.maketrans(
    {
        **{code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))},
        ord("\t"): "\\t",
        ord("\n"): "\\n",
        ord("\r"): "\\r",
        **{code: f"\\u{code:04x}" for code in (0x2028, 0x2029, *BIDI_OVERRIDES)},
    }
)
"""C0 and C1 controls, DEL, the Unicode line separators and the bidirectional
overrides (which make a terminal show a line's text in another order), as
escapes."""


def escape_controls(text: str) -> str:
    """``text`` with no character that could end or rewrite a line."""
    return text if text.isprintable() else text.translate(CONTROLS)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` with every control character escaped (``\\n``,
    ``\\x1b``...): a record is one line, so a key or a partner's id that
    holds a line break cannot write a line that looks like another record.
    A traceback is one line too, its line breaks written ``\\n``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


class WebhookAccessFilter(logging.Filter):
    """Drops uvicorn's access line of a webhook answered 2xx: that request
    has its decision line already (``log_decision``), which says more, and
    a second line per delivery costs about a tenth of a duplicate's CPU.
    Refusals and every other route keep their access line."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) != 5:
            return True
        _, method, path, _, status = args
        return not (
            method == "POST"
            and str(path).startswith("/webhooks/")
            and isinstance(status, int)
            and 200 <= status < 300
        )


QUERY_NAMES_SHOWN = frozenset(
    {
        *("after", "as_of", "contains", "cursor", "customer_id", "dry_run"),
        *("limit", "namespace", "object", "outcome", "reason", "since", "source"),
        *("status", "unresolved", "until", "verify", "version"),
        *("token", "access_token", "api_key", "key"),
    }
)
"""Query parameter names an access line shows: the API's own (see
``web/openapi.py``), and the names a client puts a credential under, so
that the mistake shows. Any other name is redacted like every value: a
client may send anything there, a token included (``?idm_...``)."""
REDACTED = "<redacted>"


def redact_query(path: str) -> str:
    """``path`` with the value of every query parameter, and every name not
    in ``QUERY_NAMES_SHOWN``, replaced by ``<redacted>``:
    ``/views/orders?limit=5&token=idm_x&idm_y`` gives
    ``/views/orders?limit=<redacted>&token=<redacted>&<redacted>``."""
    base, question, query = path.partition("?")
    if not question:
        return path
    shown = []
    for item in query.split("&"):
        name, equals, _ = item.partition("=")
        shown.append(
            f"{name}={REDACTED}" if equals and name in QUERY_NAMES_SHOWN else REDACTED
        )
    return f"{base}?{'&'.join(shown)}"


class QueryRedactionFilter(logging.Filter):
    """Rewrites uvicorn's access line so that its query string is never
    written as sent: the path stays, each value (and any name the API does not
    use) becomes ``<redacted>``. A token belongs in ``Authorization``; one
    sent as ``?token=`` or ``?access_token=`` is refused (401), and must not
    then sit in the log in full."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def log_config(log_format: str, level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for idemsync and uvicorn alike
    (``log_format``: ``json`` or ``text``)."""
    formatter: dict[str, Any] = {
        "()": JsonFormatter if log_format == "json" else TextFormatter
    }
    handler = {"class": "logging.StreamHandler", "formatter": "main"}
    loggers: dict[str, Any] = {
        name: {"handlers": [], "propagate": True}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    loggers["uvicorn.access"]["filters"] = ["decided_webhooks", "redacted_queries"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "filters": {
            "decided_webhooks": {"()": WebhookAccessFilter},
            "redacted_queries": {"()": QueryRedactionFilter},
        },
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": level.upper()},
        "loggers": loggers,
    }


def log_decision(answer: Answer, seconds: float) -> None:
    """The line of one delivery decision."""
    fields: dict[str, Any] = {
        "source": answer.source,
        "key": answer.key,
        "outcome": answer.outcome.value,
        "duration_ms": round(seconds * 1000, 3),
    }
    if answer.objects:
        first = answer.objects[0]
        fields["aggregate"] = f"{first.type}/{first.id}"
        fields["version"] = first.version
    if answer.reason is not None:
        fields["reason"] = answer.reason
    decisions.info(
        "delivery %s %s/%s",
        answer.outcome.value,
        answer.source,
        answer.key,
        extra={FIELDS: fields},
    )
