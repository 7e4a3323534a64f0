"""``RecentAnswers``: a bounded map of first answers, least recently used
out first."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.delivery import FirstAnswer
from infrastructure.recent_answers import RecentAnswers

AT = datetime(2026, 11, 29, tzinfo=UTC)


def answer(n: int) -> FirstAnswer:
    return FirstAnswer({"outcome": "applied", "n": n}, AT)


def test_an_answer_put_is_found_and_counted_as_a_hit() -> None:
    recent = RecentAnswers(size=2)
    assert recent.get("acme", "k1") is None
    recent.put("acme", "k1", answer(1))
    assert recent.get("acme", "k1") == answer(1)
    assert (recent.hits, recent.misses) == (1, 1)
    assert recent.get("other", "k1") is None


def test_the_least_recently_used_answer_goes_first_when_full() -> None:
    recent = RecentAnswers(size=2)
    recent.put("acme", "k1", answer(1))
    recent.put("acme", "k2", answer(2))
    assert recent.get("acme", "k1") is not None  # k1 used: k2 is now the oldest
    recent.put("acme", "k3", answer(3))
    assert len(recent) == 2
    assert recent.get("acme", "k2") is None
    assert recent.get("acme", "k1") == answer(1)
    assert recent.get("acme", "k3") == answer(3)


def test_a_size_of_zero_keeps_nothing() -> None:
    recent = RecentAnswers(size=0)
    recent.put("acme", "k1", answer(1))
    assert len(recent) == 0 and recent.get("acme", "k1") is None
