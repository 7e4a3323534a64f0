"""What ``idemsync audit verify`` reports: findings, their kinds, the report.

Pass 1 (``infrastructure/audit/aggregate_pass.py``) reports events
``modified``, ``deleted`` or ``inserted``; pass 2
(``infrastructure/audit/checkpoint_pass.py``) reports a ``checkpoint`` that
differs and an ``anchor`` that no longer matches.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from infrastructure.audit.checkpoints import Checkpoint

MODIFIED = "modified"
DELETED = "deleted"
INSERTED = "inserted"
CHECKPOINT = "checkpoint"
ANCHOR = "anchor"
FAILURES = frozenset({MODIFIED, DELETED, INSERTED, CHECKPOINT, ANCHOR})
KINDS = (MODIFIED, DELETED, INSERTED, CHECKPOINT, ANCHOR)

KEEP = 10_000
"""Findings kept in the report (all are counted)."""


@dataclass(frozen=True)
class Finding:
    """Something that was changed behind the engine's back.

    ``notification_id``: the event's position in the global log, where one
    is known (None for a version that is gone with its ledger row). For a
    checkpoint: its first notification id, and ``checkpoint`` its seq."""

    kind: str
    notification_id: int | None
    aggregate_type: str | None
    aggregate_id: str | None
    version: int | None
    message: str
    checkpoint: int | None = None


@dataclass
class Report:
    """What ``verify`` found. ``findings`` keeps the first ``KEEP``;
    ``by_kind`` counts them all."""

    findings: list[Finding] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)
    events: int = 0
    ledger_rows: int = 0
    aggregates: int = 0
    checkpoints: int = 0
    unchecked_links: int = 0
    """Events whose link to the previous version cannot be checked (it is
    gone, already reported): their own hash is not recomputed."""
    head: Checkpoint | None = None
    uncovered_events: int = 0
    uncovered_first: int | None = None
    uncovered_last: int | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Any event modified, deleted or inserted, or a checkpoint differs."""
        return any(self.by_kind[kind] for kind in FAILURES)

    @property
    def counts(self) -> dict[str, int]:
        """Rows read and findings, by name."""
        return {
            "events": self.events,
            "ledger_rows": self.ledger_rows,
            "aggregates": self.aggregates,
            "checkpoints": self.checkpoints,
            "uncovered_events": self.uncovered_events,
            **{kind: self.by_kind[kind] for kind in KINDS},
        }

    def add(self, finding: Finding, keep: int) -> int | None:
        """Record ``finding``; its index in ``findings`` when kept."""
        self.by_kind[finding.kind] += 1
        if len(self.findings) >= keep:
            return None
        self.findings.append(finding)
        return len(self.findings) - 1

    def amend(self, index: int | None, note: str) -> None:
        if index is not None:
            found = self.findings[index]
            self.findings[index] = dataclasses.replace(
                found, message=f"{found.message}. {note}"
            )
