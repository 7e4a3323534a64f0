"""The ``stripe`` mapping through the ASGI app and into the read models, on
both backends, driven by Stripe's own example objects
(``tests/fixtures/stripe``) signed with the ``stripe`` library: each new
type's first delivery, its retry, reordering, and the ``orders`` and
``revenue`` rows after it; and, by hypothesis, any order and repetition of
one charge's refund events (``charge.refunded`` and ``refund.*``) giving the
same ``refunded_cents`` and revenue."""

from __future__ import annotations

import dataclasses
import itertools
import json
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, MetaData, select
from starlette.testclient import TestClient

from domain.delivery import Delivery, Outcome
from infrastructure.mappings.stripe import map_stripe
from infrastructure.settings import Settings
from projections.orders import OrdersProjection
from projections.revenue import RevenueProjection
from projections.runner import ProjectionRunner
from tests.partner import auth
from tests.read_models import caught_up
from tests.store import Store
from tests.stripe_examples import envelope, example, stripe_headers
from web.app import create_app

T0 = int(time.time()) - 7200
"""When the first object changed (Stripe's ``created``, whole seconds)."""
ORDERS = OrdersProjection().define(MetaData())["orders"]
REVENUE = RevenueProjection().define(MetaData())["revenue"]
INVOICE_ID = example("invoice")["id"]
Event = dict[str, Any]


def completed(order_id: str, cents: int, currency: str = "eur", **changes: Any) -> Any:
    """Stripe's example Checkout Session, completed and paid for ``order_id``."""
    return example(
        "checkout.session",
        **{
            "client_reference_id": order_id,
            "currency": currency,
            "amount_total": cents,
            "mode": "payment",
            "status": "complete",
            "payment_status": "paid",
            **changes,
        },
    )


def refund(order_id: str, refund_id: str, cents: int, status: str) -> Any:
    return example(
        "refund",
        id=refund_id,
        amount=cents,
        status=status,
        metadata={"order_id": order_id},
    )


def charge(
    order_id: str, refunded_cents: int, refunds: list[Any], *, whole: bool = False
) -> Any:
    obj = example(
        "charge",
        amount_refunded=refunded_cents,
        refunded=whole,
        metadata={"order_id": order_id},
    )
    obj["refunds"]["data"] = refunds
    obj["refunds"]["total_count"] = len(refunds)
    return obj


def dispute(order_id: str, cents: int, status: str) -> Any:
    return example(
        "dispute", amount=cents, status=status, metadata={"order_id": order_id}
    )


def stripe_app(settings: Settings) -> TestClient:
    source = msgspec.structs.replace(
        settings.sources["acme"], scheme="stripe", mapping="stripe"
    )
    return TestClient(
        create_app(dataclasses.replace(settings, sources={"acme": source}))
    )


def test_each_new_stripe_type_first_delivered_retried_and_reordered_in_the_read_models(
    settings: Settings, secret: str
) -> None:
    ids = (f"evt_1Q{n:06d}" for n in itertools.count())

    def event(type_: str, obj: Any, at: int) -> Event:
        return envelope(type_, obj, event_id=next(ids), created=T0 + at)

    def send(document: Event, expect: str) -> None:
        body = json.dumps(document).encode()
        response = client.post(
            "/webhooks/acme", content=body, headers=stripe_headers(secret, body)
        )
        answer = response.json()
        assert answer["outcome"] == expect, (document["type"], answer)
        assert response.status_code == (202 if expect == "parked" else 200), answer

    re_1_pending = refund("ord_A", "re_1", 1000, "pending")
    re_1 = refund("ord_A", "re_1", 1000, "succeeded")
    re_2 = refund("ord_B", "re_2", 5000, "succeeded")
    # (the event, its outcome the first time) in the order they arrive
    arrivals = [
        # ord_A: a guest checkout (the example session has no customer)
        (event("refund.updated", re_1, 10), "parked"),  # before its order
        (event("checkout.session.completed", completed("ord_A", 10_000), 0), "applied"),
        (event("charge.refunded", charge("ord_A", 1000, [re_1]), 10), "stale"),
        (event("refund.created", re_1_pending, 10), "stale"),  # same second, earlier
        (event("charge.dispute.closed", dispute("ord_A", 3000, "lost"), 20), "applied"),
        # ord_B: fully refunded, a won dispute
        (
            event(
                "checkout.session.completed",
                completed("ord_B", 5000, customer="cus_QXg1o8vcGmoR32"),
                0,
            ),
            "applied",
        ),
        (
            event("charge.refunded", charge("ord_B", 5000, [re_2], whole=True), 40),
            "applied",
        ),
        (event("refund.created", re_2, 40), "stale"),  # after the charge that lists it
        (event("charge.dispute.closed", dispute("ord_B", 5000, "won"), 30), "applied"),
        # a subscription invoice: its own order
        (event("invoice.paid", example("invoice", amount_paid=2900), 50), "applied"),
        # ord_C: expired, never created; ord_D: created unpaid, then expired
        (
            event(
                "checkout.session.expired",
                completed("ord_C", 700, status="expired", payment_status="unpaid"),
                60,
            ),
            "parked",
        ),
        (
            event(
                "checkout.session.completed",
                completed("ord_D", 800, payment_status="unpaid"),
                0,
            ),
            "applied",
        ),
        (
            event(
                "checkout.session.expired",
                completed("ord_D", 800, status="expired", payment_status="unpaid"),
                60,
            ),
            "applied",
        ),
    ]
    with stripe_app(settings) as client:
        for document, outcome in arrivals:
            send(document, outcome)
        for document, _ in arrivals:  # Stripe's retries: the same event id
            send(document, "duplicate")
        caught_up(client)

        def order(order_id: str) -> Any:
            response = client.get(f"/views/orders/{order_id}", headers=auth("reader"))
            assert response.status_code == 200, response.text
            return response.json()

        a, b = order("ord_A"), order("ord_B")
        assert (a["status"], a["customer_id"], a["paid_cents"]) == (
            "paid",
            None,
            10_000,
        )
        assert (a["refunded_cents"], a["disputed_cents"]) == (1000, 3000)
        assert (b["status"], b["customer_id"]) == ("refunded", "cus_QXg1o8vcGmoR32")
        assert (b["refunded_cents"], b["disputed_cents"]) == (5000, 0)
        invoice = order(INVOICE_ID)
        assert (invoice["status"], invoice["customer_id"]) == (
            "paid",
            "cus_QXg1o8vcGmoR32",
        )
        assert (invoice["currency"], invoice["paid_cents"]) == ("USD", 2900)
        assert order("ord_D")["status"] == "cancelled"
        missing = client.get("/views/orders/ord_C", headers=auth("reader"))
        assert missing.status_code == 404

        revenue = client.get("/views/revenue", headers=auth("reader")).json()
        by_currency = {row["currency"]: row for row in revenue["items"]}
        assert by_currency["EUR"] == {
            "namespace": "acme",
            "currency": "EUR",
            "paid_cents": 15_000,
            "refunded_cents": 6000,
            "disputed_cents": 3000,
            "net_cents": 6000,
            "orders_paid": 2,
        }
        assert by_currency["USD"]["net_cents"] == 2900


# -- hypothesis: one charge's refund events in any order, repeated -------------------


def refund_history(order_id: str, currency: str, prefix: str) -> list[Event]:
    """One charge's life: paid 10 000, refund ``r1`` pending then succeeded in
    the same second, ``r2`` pending then failed, ``r3`` completing a full
    refund; each refund told by ``refund.*`` and by the charges listing it.
    In source order; the event ids start with ``prefix``."""
    r1p, r1 = (refund(order_id, "re_1", 2500, s) for s in ("pending", "succeeded"))
    r2p, r2f = (refund(order_id, "re_2", 2000, s) for s in ("pending", "failed"))
    r3 = refund(order_id, "re_3", 7500, "succeeded")
    steps: list[tuple[str, Any, int]] = [
        ("checkout.session.completed", completed(order_id, 10_000, currency), 0),
        ("refund.created", r1p, 10),
        ("refund.updated", r1, 10),
        ("charge.refunded", charge(order_id, 2500, [r1]), 10),
        ("refund.created", r2p, 20),
        ("charge.refunded", charge(order_id, 4500, [r2p, r1]), 20),
        ("refund.updated", r2f, 30),
        ("refund.created", r3, 40),
        ("charge.refunded", charge(order_id, 10_000, [r3, r2f, r1], whole=True), 40),
    ]
    return [
        envelope(type_, obj, event_id=f"{prefix}_{n}", created=T0 + at)
        for n, (type_, obj, at) in enumerate(steps)
    ]


@st.composite
def schedules(draw: Callable[..., Any]) -> list[int]:
    """Indices into a refund history: the checkout first, then each refund
    event at least once, some again, in any order. (The checkout first: a
    ``charge.refunded`` that lists several refunds of an order that does not
    exist yet parks only its first command, see ``tests/unit/
    test_stripe_mapping.py``, a known domain limitation.)"""
    n = len(refund_history("o", "eur", "e"))
    again = draw(st.lists(st.integers(1, n - 1), max_size=8))
    return [0, *draw(st.permutations([*range(1, n), *again]))]


def currency_of(n: int, side: str) -> str:
    letters = string.ascii_lowercase
    return f"{side}{letters[n // 26 % 26]}{letters[n % 26]}"


def deliver(store: Store, events: list[Event]) -> list[Outcome]:
    outcomes = []
    for document in events:
        body = json.dumps(document).encode()
        delivery = Delivery("acme", document["id"], datetime.now(UTC), body)
        outcomes.append(store.service.receive(delivery, map_stripe(body, {})).outcome)
    return outcomes


def rows(engine: Engine, order_id: str, currency: str) -> tuple[Any, ...]:
    with engine.connect() as conn:
        order = conn.execute(select(ORDERS).where(ORDERS.c.order_id == order_id)).one()
        revenue = conn.execute(
            select(REVENUE).where(REVENUE.c.currency == currency.upper())
        ).one()
    money = ("paid_cents", "refunded_cents", "disputed_cents")
    return (
        order.status,
        *(order._mapping[name] for name in money),
        *(revenue._mapping[name] for name in (*money, "net_cents", "orders_paid")),
    )


def test_any_order_and_repetition_of_a_charges_refund_events_gives_the_same_books(
    store: Store,
) -> None:
    engine = store.database.engine()
    runner = ProjectionRunner(
        store.service,
        engine,
        {"orders": OrdersProjection(), "revenue": RevenueProjection()},
        batch_size=5,
    )
    examples = itertools.count()

    @settings(max_examples=15, deadline=None, database=None)
    @given(schedules())
    def same_books(schedule: list[int]) -> None:
        n = next(examples)
        in_order = refund_history(f"o{n}-a", currency_of(n, "a"), f"evt_{n}a")
        shuffled = refund_history(f"o{n}-b", currency_of(n, "b"), f"evt_{n}b")
        assert Outcome.REJECTED not in deliver(store, in_order)
        outcomes = deliver(store, [shuffled[index] for index in schedule])
        assert outcomes.count(Outcome.DUPLICATE) == len(schedule) - len(shuffled)
        runner.catch_up("orders")
        runner.catch_up("revenue")

        expected = rows(engine, f"o{n}-a", currency_of(n, "a"))
        assert expected == ("refunded", 10_000, 10_000, 0, 10_000, 10_000, 0, 0, 1)
        assert rows(engine, f"o{n}-b", currency_of(n, "b")) == expected

    same_books()


def test_refunds_that_name_only_their_payment_wait_for_the_checkout_that_links_it(
    settings: Settings, secret: str
) -> None:
    """An integration that names its order only in the Checkout Session's
    ``client_reference_id``: the refunds and the dispute name the
    PaymentIntent, not the order. Arriving before the checkout, they wait on
    the payment; the completed checkout links it to the order and they are
    applied to it, each with its own delivery, counted once."""
    ids = (f"evt_1L{n:06d}" for n in itertools.count())
    payment = "pi_3LinkOnlyByPayment"

    def event(type_: str, obj: Any, at: int) -> Event:
        return envelope(type_, obj, event_id=next(ids), created=T0 + at)

    def send(document: Event) -> dict[str, Any]:
        body = json.dumps(document).encode()
        response = client.post(
            "/webhooks/acme", content=body, headers=stripe_headers(secret, body)
        )
        answer: dict[str, Any] = response.json()
        return answer

    def by_payment(kind: str, **changes: Any) -> Any:
        obj = example(kind, payment_intent=payment, **changes)
        obj["metadata"].pop("order_id", None)
        return obj

    re_1 = by_payment("refund", id="re_L1", amount=1500, status="succeeded")
    re_2 = by_payment("refund", id="re_L2", amount=500, status="succeeded")
    partial = by_payment("charge", amount_refunded=2000, refunded=False)
    partial["refunds"]["data"] = [re_1, re_2]
    lost = by_payment("dispute", amount=1000, status="lost")
    checkout = completed("ord_L", 10_000, payment_intent=payment)

    with stripe_app(settings) as client:
        early = [
            send(event("charge.refunded", partial, 30)),
            send(event("refund.created", re_1, 20)),
            send(event("charge.dispute.closed", lost, 40)),
        ]
        assert [answer["outcome"] for answer in early] == ["parked"] * 3, early
        assert all("not linked" in answer["reason"] for answer in early)
        assert send(event("checkout.session.completed", checkout, 0))["outcome"] == (
            "applied"
        )
        # The same refund again, as the charge stated it: counted once.
        late = send(event("refund.updated", re_2, 30))
        assert late["outcome"] == "stale", late
        caught_up(client)
        order = client.get("/views/orders/ord_L", headers=auth("reader")).json()

    assert (order["status"], order["paid_cents"]) == ("paid", 10_000)
    assert (order["refunded_cents"], order["disputed_cents"]) == (2000, 1000)
    store = Store(settings.database_url)
    try:
        resolutions = {
            key: store.delivery("acme", key)["resolution"]  # type: ignore[index]
            for key in (answer["key"] for answer in early)
        }
    finally:
        store.close()
    # Released in position order: each took what was newer when it came.
    assert set(resolutions.values()) == {"applied"}, resolutions
