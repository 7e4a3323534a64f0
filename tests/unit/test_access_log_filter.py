"""``serve``'s logging: a webhook answered 2xx has one line (its decision),
not also uvicorn's access line; refusals and other routes keep theirs; no
access line writes a query string as sent (issue 13)."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator

import pytest

from idemsync.cli import main
from infrastructure.logs import QUERY_NAMES_SHOWN, log_config, redact_query
from web.openapi import build_document

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


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_query_string_of_an_access_line_is_redacted_and_the_path_kept(
    configured: None, capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    """A token sent in the query string is refused (401): its access line
    must not write it. Values and names the API does not use are
    ``<redacted>``; the path and the API's own names stay."""
    token = "idm_" + "Zx9" * 14
    logging.config.dictConfig(log_config(log_format, "info"))
    for path in (
        f"/views/orders?token={token}",
        f"/views/orders?limit=5&access_token={token}",
        f"/audit/events?{token}",
        f"/metrics?{token}=1",
        f"/webhooks/acme?token={token}",
    ):
        logging.getLogger("uvicorn.access").info(
            ACCESS, "127.0.0.1:5000", "GET", path, "1.1", 401
        )
    err = capsys.readouterr().err
    assert token not in err
    assert token[4:20] not in err
    lines = err.splitlines()
    assert len(lines) == 5
    for line, shown in zip(
        lines,
        [
            "GET /views/orders?token=<redacted> HTTP/1.1",
            "GET /views/orders?limit=<redacted>&access_token=<redacted> HTTP/1.1",
            "GET /audit/events?<redacted> HTTP/1.1",
            "GET /metrics?<redacted> HTTP/1.1",
            "GET /webhooks/acme?token=<redacted> HTTP/1.1",
        ],
        strict=True,
    ):
        assert shown in line, line


def test_a_path_without_a_query_string_is_logged_as_it_is() -> None:
    assert redact_query("/views/orders/ord_1") == "/views/orders/ord_1"
    assert redact_query("/views/orders?") == "/views/orders?<redacted>"


def test_every_query_parameter_the_api_documents_keeps_its_name() -> None:
    """Names outside ``QUERY_NAMES_SHOWN`` are redacted: a parameter added
    to the API without being added there would lose its name in the log."""
    document = build_document(
        projections=("orders", "customers", "revenue", "sources"),
        metrics_require_token=False,
    )
    documented = {
        parameter["name"]
        for operations in document["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }
    assert documented
    assert documented <= QUERY_NAMES_SHOWN


def test_serve_refuses_uvicorns_trace_level_which_logs_query_strings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--log-level", "trace"])
    assert "invalid choice: 'trace'" in capsys.readouterr().err
