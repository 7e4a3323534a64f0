"""Replay stored deliveries through today's mapping and rules (specification §6).

After a mapping fix, deliveries that were ``ignored`` (or ``rejected``,
``parked``...) under the old code are decided again: the raw payload and
headers kept in the delivery log are decoded as a live delivery is
(``Source.decode``: the source's mapping and the refusals every mapping
gets), without HTTP and without a signature check (they were verified when
they were received), then go through ``SyncService.replay``
against the objects as they are now. That writes the new events, the record's
``resolution`` and the receipt's ``Resolved`` in one transaction, and writes
nothing when the delivery's effect would not change: replaying twice is
replaying once.

A delivery's outcome is its ``resolution`` when it has one (a released parked
delivery, an earlier replay), else its first ``outcome``; ``--outcome``
selects on that. Deliveries are replayed in the order they were received.

A redacted delivery (a data subject's erasure emptied its payload and
headers, ``infrastructure.privacy.redaction``) is never decoded again: it is
reported ``redacted``, unchanged, so that no replay brings its data back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, Row, case, func, select

from domain.application import SyncService
from domain.delivery import Delivery
from infrastructure.persistence.deliveries import DELIVERIES, moment
from infrastructure.persistence.ledger import iso, parse_time
from infrastructure.refusals import UnreadablePayload
from infrastructure.sources import Source

_current_outcome = func.coalesce(DELIVERIES.c.resolution, DELIVERIES.c.outcome)
_current_reason = case(
    (DELIVERIES.c.resolution.is_(None), DELIVERIES.c.reason),
    else_=DELIVERIES.c.resolution_reason,
)


@dataclass(frozen=True)
class Replayed:
    """One delivery, before and after its replay. ``changed``: the replay
    wrote (or, dry, would write) something, or the outcome moved meanwhile
    (a parked delivery released by one replayed before it); ``redacted``:
    its payload was erased, it was not decided again."""

    key: str
    before: str
    now: str
    reason: str | None
    changed: bool
    failed: bool = False
    redacted: bool = False


class Replayer:
    """Replays the deliveries of one source; ``dry_run`` decides but writes
    nothing (so a delivery another one would have released shows unchanged)."""

    def __init__(
        self, service: SyncService, engine: Engine, source: Source, dry_run: bool
    ) -> None:
        self.service = service
        self.engine = engine
        self.source = source
        self.dry_run = dry_run

    def candidates(
        self, outcome: str | None = None, since: datetime | None = None
    ) -> list[tuple[str, str]]:
        """The (key, current outcome) of the deliveries to replay, in the
        order they were received."""
        query = (
            select(DELIVERIES.c.idempotency_key, _current_outcome)
            .where(DELIVERIES.c.source == self.source.name)
            .order_by(DELIVERIES.c.received_at, DELIVERIES.c.idempotency_key)
        )
        if outcome is not None:
            query = query.where(_current_outcome == outcome)
        if since is not None:
            query = query.where(DELIVERIES.c.received_at >= moment(self.engine, since))
        with self.engine.connect() as conn:
            return [(key, current) for key, current in conn.execute(query)]

    def replay(self, key: str, before: str) -> Replayed | None:
        """Decide the delivery ``key`` again; None when its record is gone
        (pruned since ``candidates``)."""
        row = self._record(key)
        if row is None:
            return None
        if row.redacted_at is not None:
            now = row.current_outcome
            when = iso(parse_time(row.redacted_at))
            reason = f"redacted at {when}: its payload is erased, not decided again"
            return Replayed(key, before, now, reason, now != before, redacted=True)
        headers: dict[str, str] = json.loads(row.headers)
        payload = bytes(row.payload)
        received_at = parse_time(row.received_at)
        try:
            mapped = self.source.decode(payload, headers, received_at)
        except UnreadablePayload as invalid:
            reason = f"today's mapping refuses it: {invalid.path}: {invalid.message}"
            return Replayed(key, before, before, reason, False, failed=True)
        delivery = Delivery(
            self.source.name,
            key,
            received_at,
            payload,
            headers,
            namespace=self.source.namespace,
        )
        answer = self.service.replay(delivery, mapped, commit=not self.dry_run)
        if answer is None:
            now = row.current_outcome
            return Replayed(key, before, now, row.current_reason, now != before)
        return Replayed(key, before, answer.outcome.value, answer.reason, True)

    def _record(self, key: str) -> Row | None:
        query = select(
            DELIVERIES.c.received_at,
            DELIVERIES.c.payload,
            DELIVERIES.c.headers,
            DELIVERIES.c.redacted_at,
            _current_outcome.label("current_outcome"),
            _current_reason.label("current_reason"),
        ).where(
            DELIVERIES.c.source == self.source.name,
            DELIVERIES.c.idempotency_key == key,
        )
        with self.engine.connect() as conn:
            return conn.execute(query).first()


def summary(results: Sequence[Replayed]) -> dict[str, int]:
    """How many were replayed, changed, unchanged and failed to map."""
    changed = sum(1 for result in results if result.changed)
    failed = sum(1 for result in results if result.failed)
    return {
        "replayed": len(results),
        "changed": changed,
        "unchanged": len(results) - changed - failed,
        "failed": failed,
    }
