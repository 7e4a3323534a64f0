"""One record is one line, in both log formats (issue 13): a key, a partner's
id or any text that reaches a log line cannot hold a line break (or another
control character) that writes a line of its own."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from domain.delivery import Answer, ObjectRef, Outcome
from infrastructure.logs import escape_controls, log_config, log_decision

FORGED = "INFO idemsync.deliveries: delivery applied acme/forged"
HOSTILE_KEYS = [
    f"msg_1\n{FORGED}",
    f"msg_1\r\n{FORGED}",
    f"msg_1\r{FORGED}",
    f"msg_1\x85{FORGED}",
    f"msg_1\u2028{FORGED}",
    f"msg_1\u2029{FORGED}",
    f"msg_1\x0b\x0c\x1c\x1d\x1e{FORGED}",
    f"msg_1\x1b[2K\x1b[1G{FORGED}",  # a terminal's erase-line, then the forgery
    f"msg_1\x00\x7f\x9b{FORGED}",
    f"msg_1\u202e{FORGED}",
]


@pytest.fixture
def configured() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def logged(capsys: pytest.CaptureFixture[str], log_format: str, key: str) -> str:
    logging.config.dictConfig(log_config(log_format, "info"))
    answer = Answer(
        Outcome.APPLIED, "acme", key, (ObjectRef("order", f"ord\n{key}", 2),)
    )
    log_decision(answer, 0.001)
    return capsys.readouterr().err


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_a_key_with_control_characters_stays_on_its_line_in_text(
    configured: None, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    out = logged(capsys, "text", key)
    assert out.endswith("\n")
    assert len(out.splitlines()) == 1, out
    assert out.count(FORGED) == 1 and not out.startswith(FORGED)
    assert all(c.isprintable() for c in out.removesuffix("\n")), ascii(out)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_a_key_with_control_characters_stays_on_its_line_in_json(
    configured: None, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    """JSON escapes what it must; NEL and U+2028/2029, which JSON may leave
    as they are but ``splitlines`` breaks on, are escaped too. The key reads
    back exactly."""
    out = logged(capsys, "json", key)
    assert len(out.splitlines()) == 1, out
    line = json.loads(out)
    assert (line["key"], line["message"]) == (key, f"delivery applied acme/{key}")


def test_a_traceback_in_text_is_one_line_too(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.config.dictConfig(log_config("text", "info"))
    try:
        raise ValueError(f"bad key msg_1\n{FORGED}")
    except ValueError:
        logging.getLogger("idemsync").exception("failed")
    out = capsys.readouterr().err
    assert len(out.splitlines()) == 1, out
    assert "Traceback (most recent call last):\\n" in out


def test_escaping_leaves_printable_text_alone() -> None:
    text = "delivery applied acme/évènement-日本-ok \\n (a backslash, an n)"
    assert escape_controls(text) == text
    assert escape_controls("a\tb\nc\x1bd") == "a\\tb\\nc\\x1bd"
