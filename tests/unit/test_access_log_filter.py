"""``serve``'s logging: a webhook answered 2xx has one line (its decision),
not also uvicorn's access line; refusals and other routes keep theirs."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator

import pytest

from infrastructure.logs import log_config

ACCESS = '%s - "%s %s HTTP/%s" %d'  # uvicorn's access line, as it logs it


@pytest.fixture
def configured() -> Iterator[None]:
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.filters[:], access.handlers[:])
    yield
    root.handlers[:], access.filters[:], access.handlers[:] = saved[0], *saved[2:]
    root.setLevel(saved[1])


def access_lines(
    capsys: pytest.CaptureFixture[str], *requests: tuple[str, str, int]
) -> list[str]:
    logging.config.dictConfig(log_config("text", "info"))
    for method, path, status in requests:
        logging.getLogger("uvicorn.access").info(
            ACCESS, "127.0.0.1:5000", method, path, "1.1", status
        )
    return capsys.readouterr().err.splitlines()


def test_only_refused_webhooks_and_other_routes_get_an_access_line(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = access_lines(
        capsys,
        ("POST", "/webhooks/acme", 200),
        ("POST", "/webhooks/acme", 202),
        ("POST", "/webhooks/acme", 401),
        ("POST", "/webhooks/acme", 503),
        ("GET", "/orders/ord_1", 200),
    )
    assert [line.split('"')[1] for line in lines] == [
        "POST /webhooks/acme HTTP/1.1",
        "POST /webhooks/acme HTTP/1.1",
        "GET /orders/ord_1 HTTP/1.1",
    ]
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["401", "503", "200"]
