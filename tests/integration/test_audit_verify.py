"""Tamper evidence (issue 5, item 6), on both backends: real signed deliveries
through the intake and the service, a checkpoint, then rows edited, deleted
and inserted with plain SQL behind the engine's back; ``idemsync audit
verify`` names each change exactly once and exits 1."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from domain.order import Order
from domain.provenance import Provenance
from idemsync.cli import main
from infrastructure.audit.checkpoints import Checkpointer, head
from infrastructure.audit.verify import (
    ANCHOR,
    CHECKPOINT,
    DELETED,
    INSERTED,
    MODIFIED,
    Finding,
    verify,
    verify_chain,
)
from infrastructure.persistence.database import Database
from infrastructure.persistence.ledger import event_hash, iso, parse_time
from infrastructure.settings import Settings
from tests.intake import deliver
from tests.partner import Partner


@dataclass
class Log:
    """The store after a few real deliveries, with plain-SQL access."""

    url: str
    engine: Engine

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def oid(self, order_id: str) -> Any:
        """The originator id of an order as the tables store it."""
        originator_id = Order.create_id(order_id, "acme")
        return originator_id if self.postgres else originator_id.hex

    def run(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def event(self, order_id: str, version: int) -> Any:
        position = "notification_id" if self.postgres else "rowid"
        return self.rows(
            f"SELECT {position} AS notification_id, topic, state "
            "FROM idemsync_events WHERE originator_id = :id "
            "AND originator_version = :version",
            id=self.oid(order_id),
            version=version,
        )[0]

    def ledger(self, order_id: str, version: int) -> Any:
        return self.rows(
            "SELECT * FROM event_audit WHERE originator_id = :id "
            "AND originator_version = :version",
            id=self.oid(order_id),
            version=version,
        )[0]

    def where(self, order_id: str, version: int) -> dict[str, Any]:
        return {"id": self.oid(order_id), "version": version}


@pytest.fixture
def log(settings: Settings, partner: Partner) -> Iterator[Log]:
    """ord_1 created, paid and shipped (versions 1-4), ord_2 created
    (versions 1-2), each delivery with its receipt; then one checkpoint."""
    deliver(
        settings,
        partner.order_created("ord_1"),
        partner.event("order.paid", order_id="ord_1", amount_cents=5000),
        partner.event(
            "order.shipped", order_id="ord_1", carrier="ups", tracking_number="1Z"
        ),
        partner.order_created("ord_2"),
    )
    database = Database(settings.database_url)
    checkpoint = Checkpointer(database.engine()).catch_up()
    assert checkpoint is not None and checkpoint.seq == 1
    yield Log(settings.database_url, database.engine())
    database.close()


def brief(findings: list[Finding]) -> list[tuple[Any, ...]]:
    """Findings without their messages."""
    return [
        (
            f.kind,
            f.notification_id,
            f.aggregate_type,
            f.aggregate_id,
            f.version,
            f.checkpoint,
        )
        for f in findings
    ]


def run_cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    url: str,
    *args: str,
) -> tuple[int, str]:
    config = tmp_path / "idemsync.toml"
    config.write_text(
        '[sources.acme]\nscheme = "standard-webhooks"\nsecrets = ["env:ACME_SECRET"]\n'
    )
    monkeypatch.setenv("IDEMSYNC_CONFIG", str(config))
    monkeypatch.setenv("IDEMSYNC_DATABASE_URL", url)
    capsys.readouterr()
    code = main(["audit", *args])
    return code, capsys.readouterr().out


def assert_cli_fails_naming(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    log: Log,
    *lines: str,
) -> None:
    code, out = run_cli(monkeypatch, capsys, tmp_path, log.url, "verify")
    assert code == 1, out
    for line in lines:
        assert line in out, out
    assert "FAILED" in out


def test_a_clean_store_verifies_and_prints_the_head_to_keep_elsewhere(
    log: Log,
    settings: Settings,
    partner: Partner,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    report = verify(log.engine)
    assert report.findings == [] and not report.failed
    assert report.events == report.ledger_rows == 10
    assert report.aggregates == 6  # two orders, four receipts
    assert report.head is not None and report.head.seq == 1
    assert report.head.events == 10 and report.uncovered_events == 0

    code, out = run_cli(monkeypatch, capsys, tmp_path, log.url, "verify")
    assert code == 0, out
    assert "OK: every event, ledger row and checkpoint matches" in out
    assert (
        f"head checkpoint: seq 1, last notification "
        f"{report.head.last_notification_id}, hash {report.head.hash}"
    ) in out
    assert "an anchor kept elsewhere" in out

    deliver(settings, partner.event("order.paid", order_id="ord_2", amount_cents=1))
    later = verify(log.engine)
    assert later.findings == [] and later.uncovered_events == 2
    code, out = run_cli(monkeypatch, capsys, tmp_path, log.url, "verify")
    assert code == 0 and "not yet covered: 2 events after the last checkpoint" in out

    code, out = run_cli(monkeypatch, capsys, tmp_path, log.url, "checkpoint")
    assert code == 0 and "wrote 1 checkpoint" in out and "seq 2" in out
    assert verify(log.engine).uncovered_events == 0


def test_an_event_whose_stored_state_was_updated_is_named_modified(
    log: Log,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    paid = log.event("ord_1", 3)
    forged = bytes(paid.state).replace(b"5000", b"9000")
    assert forged != bytes(paid.state)
    log.run(
        "UPDATE idemsync_events SET state = :state "
        "WHERE originator_id = :id AND originator_version = :version",
        state=forged,
        **log.where("ord_1", 3),
    )
    report = verify(log.engine)
    assert brief(report.findings) == [
        (MODIFIED, paid.notification_id, "order", "ord_1", 3, None)
    ]
    assert "does not match its ledger hash" in report.findings[0].message
    assert_cli_fails_naming(
        monkeypatch,
        capsys,
        tmp_path,
        log,
        f"MODIFIED    notification {paid.notification_id}",
        "order ord_1 version 3: it does not match its ledger hash",
        "1 modified, 0 deleted, 0 inserted, 0 checkpoint findings",
    )


def test_a_deleted_event_row_is_named_deleted_by_its_ledger_row(
    log: Log,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    paid = log.event("ord_1", 3)
    log.run(
        "DELETE FROM idemsync_events "
        "WHERE originator_id = :id AND originator_version = :version",
        **log.where("ord_1", 3),
    )
    report = verify(log.engine)
    assert brief(report.findings) == [
        (DELETED, paid.notification_id, "order", "ord_1", 3, None)
    ]
    assert "the event is gone" in report.findings[0].message
    assert_cli_fails_naming(
        monkeypatch,
        capsys,
        tmp_path,
        log,
        "order ord_1 version 3: the event is gone from the event table",
    )


def test_a_forged_event_row_with_the_next_version_is_named_inserted(
    log: Log,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    log.run(
        "INSERT INTO idemsync_events "
        "(originator_id, originator_version, topic, state) "
        "SELECT originator_id, 5, topic, state FROM idemsync_events "
        "WHERE originator_id = :id AND originator_version = :version",
        **log.where("ord_1", 4),
    )
    forged = log.event("ord_1", 5)
    report = verify(log.engine)
    assert brief(report.findings) == [
        (INSERTED, forged.notification_id, "order", "ord_1", 5, None)
    ]
    assert_cli_fails_naming(
        monkeypatch,
        capsys,
        tmp_path,
        log,
        f"INSERTED    notification {forged.notification_id}",
        "order ord_1 version 5: a stored event with no ledger row",
    )


def test_an_event_deleted_with_its_ledger_row_is_named_by_the_version_gap(
    log: Log,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for table in ("idemsync_events", "event_audit"):
        log.run(
            f"DELETE FROM {table} "
            "WHERE originator_id = :id AND originator_version = :version",
            **log.where("ord_1", 3),
        )
    report = verify(log.engine)
    assert brief(report.findings) == [
        (DELETED, None, "order", "ord_1", 3, None),
        (CHECKPOINT, 1, None, None, None, 1),
    ]
    assert "version 3 is missing" in report.findings[0].message
    assert "9 events" in report.findings[1].message
    assert_cli_fails_naming(
        monkeypatch,
        capsys,
        tmp_path,
        log,
        "order ord_1 version 3: version 3 is missing",
        "checkpoint 1: checkpoint 1 (notifications 1-10) differs",
    )


def test_the_last_event_of_the_log_deleted_with_its_ledger_row_fails_its_checkpoint(
    log: Log,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    position = "notification_id" if log.postgres else "rowid"
    (last,) = log.rows(f"SELECT max({position}) FROM idemsync_events")[0]
    log.run(f"DELETE FROM idemsync_events WHERE {position} = :n", n=last)
    log.run("DELETE FROM event_audit WHERE notification_id = :n", n=last)
    report = verify(log.engine)
    assert brief(report.findings) == [(CHECKPOINT, 1, None, None, None, 1)]
    message = report.findings[0].message
    assert f"checkpoint 1 (notifications 1-{last}) differs" in message
    assert "stored 10 events" in message and "gives 9 events" in message
    assert_cli_fails_naming(
        monkeypatch,
        capsys,
        tmp_path,
        log,
        "0 modified, 0 deleted, 0 inserted, 1 checkpoint findings",
    )


def test_a_ledger_row_whose_source_was_edited_is_named_modified(
    log: Log,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    created = log.event("ord_1", 2)
    log.run(
        "UPDATE event_audit SET source = 'forged' "
        "WHERE originator_id = :id AND originator_version = :version",
        **log.where("ord_1", 2),
    )
    report = verify(log.engine)
    assert brief(report.findings) == [
        (MODIFIED, created.notification_id, "order", "ord_1", 2, None)
    ]
    assert_cli_fails_naming(
        monkeypatch, capsys, tmp_path, log, "order ord_1 version 2: it does not match"
    )


@pytest.mark.parametrize("forged", ["default", "elsewhere"])
def test_a_ledger_row_moved_to_another_namespace_is_named_modified(
    log: Log, forged: str
) -> None:
    """A row's namespace is hashed (``acme``'s, not the default): moving the
    event to another namespace's object, the default included, is caught."""
    created = log.event("ord_1", 2)
    log.run(
        "UPDATE event_audit SET namespace = :forged "
        "WHERE originator_id = :id AND originator_version = :version",
        forged=forged,
        **log.where("ord_1", 2),
    )
    report = verify(log.engine)
    assert brief(report.findings) == [
        (MODIFIED, created.notification_id, "order", "ord_1", 2, None)
    ]


def test_an_edited_ledger_hash_is_one_finding_and_its_checkpoint_not_a_cascade(
    log: Log,
) -> None:
    created = log.event("ord_1", 2)
    log.run(
        "UPDATE event_audit SET hash = :hash "
        "WHERE originator_id = :id AND originator_version = :version",
        hash=hashlib.sha256(b"forged").hexdigest(),
        **log.where("ord_1", 2),
    )
    report = verify(log.engine)
    assert brief(report.findings) == [
        (MODIFIED, created.notification_id, "order", "ord_1", 2, None),
        (CHECKPOINT, 1, None, None, None, 1),
    ]
    assert "Its ledger hash itself was changed" in report.findings[0].message


def test_an_event_rewritten_with_a_recomputed_ledger_hash_breaks_the_next_link(
    log: Log,
) -> None:
    """The chain is unkeyed: whoever knows the formula can rewrite a hash.
    The next version no longer chains from it (named there), and the
    checkpoint over the rewritten hash differs."""
    paid, entry = log.event("ord_1", 3), log.ledger("ord_1", 3)
    before = bytes.fromhex(log.ledger("ord_1", 2).hash)
    forged = bytes(paid.state).replace(b"5000", b"9000")
    where = Provenance(
        entry.aggregate_type,
        entry.aggregate_id,
        entry.source,
        entry.idempotency_key,
        entry.occurred_at,
        entry.namespace,
    )
    rehashed = event_hash(
        before,
        Order.create_id("ord_1", "acme"),
        3,
        paid.topic,
        forged,
        iso(parse_time(entry.recorded_at)),
        where,
    )
    log.run(
        "UPDATE idemsync_events SET state = :state "
        "WHERE originator_id = :id AND originator_version = :version",
        state=forged,
        **log.where("ord_1", 3),
    )
    log.run(
        "UPDATE event_audit SET hash = :hash "
        "WHERE originator_id = :id AND originator_version = :version",
        hash=rehashed.hex(),
        **log.where("ord_1", 3),
    )
    report = verify(log.engine)
    shipped = log.event("ord_1", 4)
    assert brief(report.findings) == [
        (MODIFIED, shipped.notification_id, "order", "ord_1", 4, None),
        (CHECKPOINT, 1, None, None, None, 1),
    ]
    assert "or version 3 was rewritten together with its ledger hash" in (
        report.findings[0].message
    )


def test_an_edited_checkpoint_is_one_finding_and_the_next_one_still_links(
    log: Log, settings: Settings, partner: Partner
) -> None:
    deliver(settings, partner.event("order.paid", order_id="ord_2", amount_cents=1))
    assert Checkpointer(log.engine).catch_up().seq == 2  # type: ignore[union-attr]
    log.run(
        "UPDATE checkpoints SET hash = :hash WHERE seq = 1",
        hash=hashlib.sha256(b"forged").hexdigest(),
    )
    report = verify(log.engine)
    assert brief(report.findings) == [(CHECKPOINT, 1, None, None, None, 1)]


def test_a_rewritten_checkpoint_chain_is_caught_only_against_an_anchor_kept_outside(
    log: Log,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    anchor = head(log.engine)
    assert anchor is not None
    position = "notification_id" if log.postgres else "rowid"
    (last,) = log.rows(f"SELECT max({position}) FROM idemsync_events")[0]
    log.run(f"DELETE FROM idemsync_events WHERE {position} = :n", n=last)
    log.run("DELETE FROM event_audit WHERE notification_id = :n", n=last)
    log.run("DELETE FROM checkpoints")
    Checkpointer(log.engine).catch_up()

    assert verify(log.engine).findings == []
    report = verify(log.engine, anchor=(anchor.seq, anchor.hash))
    assert brief(report.findings) == [(ANCHOR, 1, None, None, None, 1)]
    code, out = run_cli(
        monkeypatch,
        capsys,
        tmp_path,
        log.url,
        "verify",
        "--anchor",
        f"{anchor.seq}:{anchor.hash}",
    )
    assert code == 1 and "the checkpoints were rewritten" in out
    code, _ = run_cli(monkeypatch, capsys, tmp_path, log.url, "verify")
    assert code == 0


def test_verify_streams_in_small_batches_with_the_same_answer(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server-side cursors fetched a few rows at a time, interleaved."""
    import infrastructure.audit.verify as module

    log.run(
        "DELETE FROM idemsync_events "
        "WHERE originator_id = :id AND originator_version = :version",
        **log.where("ord_2", 2),
    )
    expected = brief(verify(log.engine).findings)
    monkeypatch.setattr(module, "BATCH", 2)
    monkeypatch.setattr(module, "PROGRESS_EVERY", 3)
    seen: list[tuple[str, int]] = []
    report = verify(log.engine, lambda p: seen.append((p.phase, p.done)))
    assert brief(report.findings) == expected and len(expected) == 1
    assert ("aggregates", 3) in seen and ("checkpoints", 10) in seen


def test_one_objects_chain_is_checked_alone_and_names_its_edited_event(
    log: Log,
) -> None:
    assert (
        brief(verify_chain(log.engine, Order.create_id("ord_1", "acme")).findings) == []
    )
    paid = log.event("ord_1", 3)
    log.run(
        "UPDATE idemsync_events SET state = :state "
        "WHERE originator_id = :id AND originator_version = :version",
        state=bytes(paid.state).replace(b"5000", b"9000"),
        **log.where("ord_1", 3),
    )
    ord_1 = verify_chain(log.engine, Order.create_id("ord_1", "acme"))
    assert ord_1.events == ord_1.ledger_rows == 4
    assert brief(ord_1.findings) == [
        (MODIFIED, paid.notification_id, "order", "ord_1", 3, None)
    ]
    assert ord_1.failed and ord_1.aggregates == 1
    ord_2 = verify_chain(log.engine, Order.create_id("ord_2", "acme"))
    assert ord_2.findings == [] and not ord_2.failed
    assert ord_2.events == ord_2.ledger_rows == 2
