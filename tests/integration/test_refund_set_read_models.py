"""Refunds by id and lost disputes in the read models (specification §s 5,
6 and 11), on both backends: any schedule of a refund and dispute history
projects the ``orders`` and ``revenue`` rows of in-order delivery, a rebuild
equals the incremental build, and a known scenario through the ASGI app
(with the test mapping ``tests.money_mappings:map_money``) shows its
revenue to the cent."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import msgspec
from hypothesis import given, settings
from sqlalchemy import Engine, MetaData, select
from starlette.testclient import TestClient

from domain.application import SyncService
from domain.delivery import Delivery, Outcome
from infrastructure.settings import Settings
from projections.orders import OrdersProjection
from projections.rebuild import rebuild
from projections.revenue import RevenueProjection
from projections.runner import ProjectionRunner
from tests.money_histories import SOURCE, T0, History, Sent, histories_and_schedules
from tests.partner import Partner, auth, post
from tests.read_models import caught_up
from tests.store import Store
from web.app import create_app
from web.state import app_state

EXAMPLES = 20
"""Examples per backend: each delivers two schedules to a real store."""
ORDERS = OrdersProjection().define(MetaData())["orders"]
REVENUE = RevenueProjection().define(MetaData())["revenue"]
SHOWN = (
    "status",
    "customer_id",
    "total_cents",
    "paid_cents",
    "refunded_cents",
    "disputed_cents",
)
"""The ``orders`` columns compared (the id, currency, version and time of
the last change differ between two deliveries of one history by design)."""
TOTALS = ("paid_cents", "refunded_cents", "disputed_cents", "net_cents")


def deliver(
    service: SyncService,
    history: History,
    schedule: tuple[Sent, ...],
    order_id: str,
    currency: str,
) -> list[Outcome]:
    """Deliver ``schedule`` for the order ``order_id`` in ``currency`` (keys
    prefixed by the order id, so examples never share one)."""
    outcomes = []
    for sent in schedule:
        command = sent.step.command(order_id, currency, history.by_sequence)
        body = sent.delivery(command).payload
        delivery = Delivery(SOURCE, f"{order_id}/{sent.key}", T0, body, {})
        outcomes.append(service.receive(delivery, [command]).outcome)
    return outcomes


def order_row(engine: Engine, order_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(ORDERS).where(ORDERS.c.order_id == order_id)).one()
    return {name: row._mapping[name] for name in SHOWN}


def revenue_row(engine: Engine, currency: str) -> tuple[int, ...]:
    with engine.connect() as conn:
        row = conn.execute(select(REVENUE).where(REVENUE.c.currency == currency)).one()
    return tuple(row._mapping[name] for name in (*TOTALS, "orders_paid"))


def test_any_schedule_of_refunds_and_disputes_projects_the_rows_of_in_order_delivery(
    store: Store,
) -> None:
    engine = store.database.engine()
    runner = ProjectionRunner(
        store.service,
        engine,
        {"orders": OrdersProjection(), "revenue": RevenueProjection()},
        batch_size=7,
    )
    examples = itertools.count()

    @settings(max_examples=EXAMPLES, deadline=None, database=None)
    @given(histories_and_schedules())
    def schedules_project_alike(case: tuple[History, tuple[Sent, ...]]) -> None:
        history, schedule = case
        n = next(examples)
        in_order = tuple(Sent(step.key, step) for step in history.steps)
        outcomes = deliver(store.service, history, in_order, f"o{n}-a", f"A{n}")
        assert set(outcomes) == {Outcome.APPLIED}
        deliver(store.service, history, schedule, f"o{n}-b", f"B{n}")
        runner.catch_up("orders")
        runner.catch_up("revenue")

        expected = order_row(engine, f"o{n}-a")
        assert order_row(engine, f"o{n}-b") == expected
        assert expected["refunded_cents"] == history.refunded_cents()
        assert expected["disputed_cents"] == history.disputed_cents()
        revenue = revenue_row(engine, f"A{n}")
        assert revenue_row(engine, f"B{n}") == revenue
        assert revenue == (*history.revenue(), 1)

    schedules_project_alike()

    for name in ("orders", "revenue"):
        report = rebuild(runner, name, verify=True, dry_run=True)
        assert report.differences is not None, name
        assert report.differing_rows == 0, (name, report.differences)


def test_revenue_to_the_cent_after_refunds_by_id_a_stated_total_and_disputes(
    settings: Settings, partner: Partner
) -> None:
    mapped = msgspec.structs.replace(
        settings.sources["acme"], mapping="tests.money_mappings:map_money"
    )
    app = create_app(dataclasses.replace(settings, sources={"acme": mapped}))

    def send(type_: str, expect: str = "applied", **data: Any) -> None:
        status, body, _ = post(client, partner.event(type_, **data))
        assert (status, body["outcome"]) == (202 if expect == "parked" else 200, expect)

    def refund(
        order_id: str, refund_id: str, cents: int, expect: str = "applied"
    ) -> None:
        send(
            "refund.recorded",
            expect,
            order_id=order_id,
            refund_id=refund_id,
            amount_cents=cents,
        )

    with TestClient(app) as client:
        refund("ord_3", "re_9", 700, expect="parked")  # before its order
        for order_id, currency, paid in (
            ("ord_1", "EUR", 10_000),
            ("ord_2", "EUR", 2_000),
            ("ord_3", "USD", 700),
        ):
            send(
                "order.created",
                order_id=order_id,
                customer_id="cus_1",
                currency=currency,
                total_cents=paid,
            )
            send("order.paid", order_id=order_id, amount_cents=paid)
        send("order.cancelled", order_id="ord_3")

        refund("ord_1", "re_1", 500)  # refund.created
        refund("ord_1", "re_1", 500)  # charge.refunded: the same refund
        again = partner.envelope(
            "refund.recorded", order_id="ord_1", refund_id="re_1", amount_cents=500
        )
        post(client, partner.sign(again))
        _, body, _ = post(client, partner.sign(again))  # a fresh key
        assert body["outcome"] == "stale", body
        refund("ord_1", "re_2", 300)
        refund("ord_1", "re_2", 0)  # cancelled
        send("order.refunded", order_id="ord_1", amount_cents=600)  # a stated total
        refund("ord_1", "re_3", 250)  # 500 + 250 now beyond the stated 600
        for dispute_id, cents, lost in (("dp_1", 1_000, True), ("dp_2", 400, False)):
            send(
                "dispute.closed",
                order_id="ord_1",
                dispute_id=dispute_id,
                amount_cents=cents,
                lost=lost,
            )
        caught_up(client)

        order = client.get("/views/orders/ord_1", headers=auth("reader")).json()
        assert (order["status"], order["paid_cents"]) == ("refunded", 10_000)
        assert (order["refunded_cents"], order["disputed_cents"]) == (750, 1_000)
        cancelled = client.get("/views/orders/ord_3", headers=auth("reader")).json()
        assert (cancelled["status"], cancelled["refunded_cents"]) == ("cancelled", 700)
        untouched = client.get("/views/orders/ord_2", headers=auth("reader")).json()
        assert (untouched["refunded_cents"], untouched["disputed_cents"]) == (None, 0)

        revenue = client.get("/views/revenue", headers=auth("reader")).json()
        assert revenue["items"] == [
            {
                "namespace": "acme",
                "currency": "EUR",
                "paid_cents": 12_000,
                "refunded_cents": 750,
                "net_cents": 10_250,
                "orders_paid": 2,
                "disputed_cents": 1_000,
            },
            {
                "namespace": "acme",
                "currency": "USD",
                "paid_cents": 700,
                "refunded_cents": 700,
                "net_cents": 0,
                "orders_paid": 1,
                "disputed_cents": 0,
            },
        ]

        runner: ProjectionRunner = app_state(client.app).runner
        for name in ("orders", "revenue"):
            report = rebuild(runner, name, verify=True, dry_run=True)
            assert report.differing_rows == 0, (name, report.differences)
