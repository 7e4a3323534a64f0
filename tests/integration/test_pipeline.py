"""The one delivery pipeline (``infrastructure.pipeline``), on both backends:
``Pipeline.answer`` is what the web route awaits, ``Pipeline.receive`` what
the CLI and the tests call; both go through the same stages and give the
same answers, and every refusal they raise has its HTTP status in ``web``
alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from domain.delivery import Outcome
from infrastructure.bootstrap import Services, bootstrap
from infrastructure.recent_answers import RecentAnswers
from infrastructure.refusals import (
    PayloadTooLarge,
    Refusal,
    UnknownSource,
    UnreadablePayload,
    Unsigned,
)
from infrastructure.settings import Settings
from tests.partner import Partner
from web.webhooks import STATUS


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = bootstrap(settings)
    yield built
    built.close()


def test_the_route_s_stages_and_the_cli_s_give_the_same_answers(
    services: Services, partner: Partner
) -> None:
    pipeline = services.intake
    source = pipeline.source("acme")
    created = partner.order_created("ord_p1")
    first = asyncio.run(pipeline.answer(source, created.headers, created.body))
    assert first.outcome is Outcome.APPLIED
    assert (first.objects[0].namespace, first.objects[0].version) == ("acme", 2)

    again = pipeline.receive("acme", created.headers, created.body)
    assert again.outcome is Outcome.DUPLICATE
    assert again.first == first.to_json()

    paid = partner.event("order.paid", order_id="ord_p1", amount_cents=5000)
    applied = pipeline.receive("acme", paid.headers, paid.body)
    retried = asyncio.run(pipeline.answer(source, paid.headers, paid.body))
    assert applied.outcome is Outcome.APPLIED
    assert retried.outcome is Outcome.DUPLICATE and retried.first == applied.to_json()
    state = services.service.state_of("order", "ord_p1", "acme")
    assert state is not None and state["status"] == "paid"


def test_the_route_s_pipeline_with_the_server_s_group_commit_decides_in_batches(
    settings: Settings, partner: Partner
) -> None:
    services = bootstrap(settings, group_commit=True)
    group = services.group_commit
    assert group is not None
    group.start()
    pipeline = services.intake
    source = pipeline.source("acme")
    created = [partner.order_created(f"ord_b{n}") for n in range(40)]
    again = created[:5]

    async def send_all() -> list[tuple[str, Outcome]]:
        sent = [pipeline.answer(source, r.headers, r.body) for r in created + again]
        return [(a.key, a.outcome) for a in await asyncio.gather(*sent)]

    try:
        answered = asyncio.run(send_all())
    finally:
        services.close()
    applied = [key for key, outcome in answered if outcome is Outcome.APPLIED]
    repeated = [key for key, outcome in answered if outcome is Outcome.DUPLICATE]
    assert sorted(applied) == sorted(r.headers["webhook-id"] for r in created)
    assert sorted(repeated) == sorted(r.headers["webhook-id"] for r in again)
    assert group.committed == 40
    assert group.batches < 40, "the deliveries waiting were decided together"


def test_a_retry_is_answered_without_decoding_its_body(
    services: Services, partner: Partner
) -> None:
    """The first answer is found before the body is decoded: a mapping that
    no longer reads a recorded delivery cannot fail its retry."""
    pipeline = services.intake
    created = partner.order_created("ord_p2")
    assert pipeline.receive("acme", created.headers, created.body).outcome is (
        Outcome.APPLIED
    )
    pipeline.recent = RecentAnswers()  # not from memory: from the store

    def unreadable(body: bytes, headers: object) -> object:
        raise AssertionError("a retry must not be decoded")

    source = pipeline.source("acme")
    object.__setattr__(source, "mapping", unreadable)
    answer = pipeline.receive("acme", created.headers, created.body)
    assert answer.outcome is Outcome.DUPLICATE


def test_each_refusal_is_raised_by_the_pipeline_and_has_one_http_status(
    services: Services, partner: Partner
) -> None:
    pipeline = services.intake
    request = partner.order_created("ord_p3")
    refusals: list[tuple[type[Refusal], object]] = [
        (UnknownSource, lambda: pipeline.source("nobody")),
        (
            Unsigned,
            lambda: pipeline.receive("acme", request.headers, request.body + b" "),
        ),
    ]
    for refusal, attempt in refusals:
        with pytest.raises(refusal):
            attempt()  # type: ignore[operator]
    nul = partner.event(
        "order.created",
        order_id="ord_\u0000",
        customer_id="c",
        currency="EUR",
        total_cents=1,
    )
    with pytest.raises(UnreadablePayload) as unreadable:
        pipeline.receive("acme", nul.headers, nul.body)
    assert unreadable.value.mapping == "standard"
    assert unreadable.value.path is not None
    huge = pipeline.source("acme").settings.max_body_bytes + 1
    with pytest.raises(PayloadTooLarge):
        pipeline.admit(pipeline.source("acme"), request.headers, b" " * huge)

    def every(cls: type[Refusal]) -> set[type[Refusal]]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= every(sub)
        return found

    assert every(Refusal) == set(STATUS), "each refusal has its HTTP status"
