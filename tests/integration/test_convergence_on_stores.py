"""Convergence on real stores (specification §5, invariant 4, and section 10).

The property of ``tests/unit/test_convergence_properties.py`` (its strategies,
``tests/history_strategies.py``), through the whole pipeline: each generated
history becomes signed requests with the ``standard`` envelope, delivered by
the real ``Pipeline`` to a real SQLite file and a real PostgreSQL database, in
any order, with retries and with re-sends of any delivery under fresh keys.

Two sources: ``acme`` (Standard Webhooks, the key is signed, so only the
partner can re-send an event under a new key: the event's position does not
depend on the key, and the copy is ``stale``) and ``hub`` (GitHub's scheme,
the key is outside the signature: a captured body re-sent under a fresh key
is a ``duplicate`` of the first copy, found by its fingerprint).

Every schedule must end in the state in-order delivery ends in (the same
requests through a ``Pipeline`` on the in-memory store), count money once,
give every key one first answer that its retries repeat, reject nothing, and
apply each event at most once whatever keys carry it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given

from domain.application import SyncService
from domain.commands import Command, CustomerCommand, OrderCommand, UpsertCustomer
from domain.delivery import Answer, Outcome
from infrastructure.bootstrap import sync_service
from infrastructure.mappings.standard import map_standard
from infrastructure.persistence.database import Database
from infrastructure.pipeline import Pipeline
from infrastructure.privacy.keys import MasterKey
from infrastructure.settings import Settings, SourceSettings
from tests.histories import MEMORY_ENV
from tests.history_strategies import (
    History,
    Schedule,
    Sent,
    latest_amount,
    schedules_with_re_sends,
)
from tests.partner import Partner, make_settings
from tests.store import Store

pytestmark = pytest.mark.slow

HUB_SECRET = "hub-secret-" + "7" * 21

PROPERTY = hypothesis.settings(
    max_examples=100,
    deadline=None,
    # The store is the test's (one database per backend), shared by the
    # examples: each example names objects and keys of its own.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def settings(database_url: str, secret: str) -> Settings:
    """``acme`` (Standard Webhooks) and ``hub`` (GitHub's scheme), both with
    the ``standard`` mapping, and a master key: the customer's fields are
    stored sealed (infrastructure/privacy), and must converge all the same."""
    base = make_settings(database_url, secret)
    hub = SourceSettings(
        name="hub", scheme="github", secrets=(HUB_SECRET,), mapping="standard"
    )
    return dataclasses.replace(
        base,
        sources={**base.sources, "hub": hub},
        master_key=MasterKey(os.urandom(32)),
    )


@pytest.fixture
def intake(settings: Settings) -> Iterator[Pipeline]:
    """The pipeline on the test's database, as ``idemsync serve`` runs it
    (without its periodic threads)."""
    database = Database.of(settings)
    service = sync_service(settings, database)
    try:
        yield Pipeline(settings, service)
    finally:
        service.close()
        database.close()


@dataclasses.dataclass(frozen=True)
class Example:
    """One example's own names: its objects' ids and its keys carry ``run``,
    so that examples sharing a store never meet."""

    run: str

    def key(self, sent: Sent) -> str:
        return f"{self.run}-{sent.key}"

    def command(self, command: Command) -> Command:
        """``command`` addressed to this example's object."""
        if isinstance(command, OrderCommand):
            return dataclasses.replace(command, order_id=f"ord-{self.run}")
        assert isinstance(command, CustomerCommand)
        return dataclasses.replace(command, customer_id=f"cus-{self.run}")

    def objects(self) -> list[tuple[str, str]]:
        return [("order", f"ord-{self.run}"), ("customer", f"cus-{self.run}")]

    def body(self, command: Command) -> bytes:
        """The ``standard`` envelope a partner sends for ``command``; it maps
        back to the same command (with the mapping's progress)."""
        own = self.command(command)
        skip = ("occurred_at", "sequence", "progress", "fields")
        data: dict[str, Any] = {
            name: value
            for name, value in dataclasses.asdict(own).items()
            if name not in skip
        }
        if isinstance(own, UpsertCustomer):
            data.update(own.fields)
        if own.sequence is not None:
            data["sequence"] = own.sequence
        envelope = {
            "type": own.type,
            "timestamp": own.occurred_at.isoformat(),
            "data": data,
        }
        body = json.dumps(envelope).encode()
        mapped = map_standard(body, {})
        assert isinstance(mapped, list) and len(mapped) == 1, mapped
        assert dataclasses.replace(mapped[0], progress=0) == own, (mapped, own)
        return body


def github_headers(body: bytes, key: str) -> dict[str, str]:
    """As GitHub sends: ``X-Hub-Signature-256: sha256=<hex>`` of the raw
    body, the key in ``X-GitHub-Delivery`` (not signed)."""
    signature = hmac.new(HUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-github-event": "order",
        "x-github-delivery": key,
        "x-hub-signature-256": f"sha256={signature}",
    }


def send(
    intake: Pipeline, partner: Partner, source: str, key: str, body: bytes
) -> Answer:
    """Deliver ``body`` under ``key``: to ``acme`` signed now (a retry is
    signed again when it is sent), to ``hub`` with GitHub's headers (a
    redelivery, or a captured request, has the same bytes)."""
    if source == "acme":
        headers = partner.sign(body, key).headers
    else:
        headers = github_headers(body, key)
    return intake.receive(source, headers, body)


def in_order(
    settings: Settings,
    partner: Partner,
    source: str,
    example: Example,
    history: History,
) -> dict[tuple[str, str], Any]:
    """The objects' states after in-order delivery of ``history``, through
    the same source and mapping on the in-memory store; every delivery must
    be applied (a valid history)."""
    service = SyncService(env=MEMORY_ENV)
    try:
        memory = Pipeline(settings, service)
        for sent in history:
            key, body = example.key(sent), example.body(sent.command)
            answer = send(memory, partner, source, key, body)
            assert answer.outcome is Outcome.APPLIED, answer.to_json()
        states = {obj: service.state_of(*obj, source) for obj in example.objects()}
    finally:
        service.close()
    for state in states.values():
        assert state is not None and state["parked"] == []
    return states


@PROPERTY
@given(case=schedules_with_re_sends())
@pytest.mark.parametrize("source", ["acme", "hub"])
def test_duplicates_reorderings_and_re_sends_under_fresh_keys_end_in_the_in_order_state(
    settings: Settings,
    intake: Pipeline,
    partner: Partner,
    store: Store,
    source: str,
    case: tuple[History, Schedule],
) -> None:
    history, schedule = case
    example = Example(uuid.uuid4().hex[:12])
    expected = in_order(settings, partner, source, example, history)

    answers: dict[str, list[Answer]] = {}
    for sent in schedule:
        key, body = example.key(sent), example.body(sent.command)
        answers.setdefault(key, []).append(send(intake, partner, source, key, body))

    # The in-order state, money counted once.
    for obj, state in expected.items():
        assert intake.service.state_of(*obj, source) == state, obj
    order = expected[("order", f"ord-{example.run}")]
    assert order["values"].get("paid_cents") == latest_amount(history, "order.paid")
    assert order["values"].get("refunded_cents") == latest_amount(
        history, "order.refunded"
    )

    # One first answer per key, never rejected; its retries repeat it.
    firsts = {key: given_answers[0] for key, given_answers in answers.items()}
    for key, (first, *retries) in answers.items():
        assert first.outcome is not Outcome.REJECTED, (key, first.to_json())
        repeated = (
            first.first if first.outcome is Outcome.DUPLICATE else first.to_json()
        )
        for retry in retries:
            assert retry.outcome is Outcome.DUPLICATE, (key, retry.to_json())
            assert retry.first == repeated, (key, retry.to_json())

    # Per event, over every key that carries it: nothing rejected, at most one
    # applied (first answer, or resolution of a parked delivery).
    carriers: dict[str, list[str]] = {}
    for sent in schedule:
        event = next(h.key for h in history if h.command == sent.command)
        keys = carriers.setdefault(event, [])
        if example.key(sent) not in keys:
            keys.append(example.key(sent))
    for event, keys in carriers.items():
        decided = [k for k in keys if firsts[k].outcome is not Outcome.DUPLICATE]
        if source == "acme":
            # Its key is signed: each key is a delivery of its own.
            assert decided == keys, (event, [firsts[k].to_json() for k in keys])
        else:
            # A capture under a fresh key: a duplicate of whichever came first.
            assert len(decided) == 1, (event, [firsts[k].to_json() for k in keys])
            original = firsts[decided[0]].to_json()
            for k in keys:
                assert k in decided or firsts[k].first == original, firsts[k]
        outcomes = []
        for k in keys:
            record = store.delivery(source, k)
            if k not in decided:
                assert record is None, (k, "a duplicate writes no record")
                continue
            assert record is not None and record["outcome"] == firsts[k].outcome
            outcomes += [record["outcome"], record["resolution"]]
        assert Outcome.REJECTED.value not in outcomes, (event, outcomes)
        assert outcomes.count(Outcome.APPLIED.value) <= 1, (event, outcomes)
