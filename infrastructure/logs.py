"""Structured logs: one JSON object per line, for machines to read.

``idemsync serve`` logs JSON by default (``--log-format text`` for people).
Each delivery decision is one line of the logger ``idemsync.deliveries``
with its fields (``source``, ``key``, ``outcome``, ``aggregate``,
``version``, ``duration_ms``...). Nothing that reaches a log line carries a
secret, a token or a payload: the fields are chosen here, not dumped.
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
        return self.encoder.encode(line).decode()


TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


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


def log_config(log_format: str, level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for idemsync and uvicorn alike
    (``log_format``: ``json`` or ``text``)."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main"}
    loggers: dict[str, Any] = {
        name: {"handlers": [], "propagate": True}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    loggers["uvicorn.access"]["filters"] = ["decided_webhooks"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "filters": {"decided_webhooks": {"()": WebhookAccessFilter}},
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
