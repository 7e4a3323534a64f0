"""The ingest benchmark's figures: a run's count, duration, latencies and
CPU, and a backend's runs, as they go to its JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Usage:
    """CPU (in CPUs: 1.0 = one core busy) of each process group over a run,
    the machine's busy share, and the server tree's RSS."""

    cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0
    rss_peak_mb: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "cpu_cores": {k: round(v, 2) for k, v in self.cpu.items()},
            "machine_busy_fraction": round(self.machine_busy, 3),
            "server_rss_peak_mb": round(self.rss_peak_mb, 1),
        }

    def describe(self) -> str:
        parts = [f"{name} {value:.2f}" for name, value in self.cpu.items()]
        return " ".join(parts) + f" | busy {self.machine_busy:.0%}"


@dataclass
class Run:
    """One measured load: a count over a duration, and its latencies."""

    name: str
    backend: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p90_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    usage: Usage | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "backend": self.backend,
            "connections": self.connections,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "errors": self.errors,
        }
        if self.usage is not None:
            out["usage"] = self.usage.to_json()
        out.update(self.extra)
        return out


@dataclass
class Backend:
    """One backend's figures."""

    backend: str
    workers: int = 1
    ceiling: list[Run] = field(default_factory=list)
    ceiling_no_lock: list[Run] = field(default_factory=list)
    ceiling_pgbench: list[Run] = field(default_factory=list)
    healthz: list[Run] = field(default_factory=list)
    unique: list[Run] = field(default_factory=list)
    at_80: Run | None = None
    duplicate: list[Run] = field(default_factory=list)
    stored: Run | None = None
    stored_events: int = 0
    prefill: dict[str, Any] = field(default_factory=dict)
    rss_idle_mb: float = 0.0
    store: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @staticmethod
    def best(runs: Sequence[Run]) -> Run | None:
        return max(runs, key=lambda r: r.per_second) if runs else None

    @property
    def rss_peak_mb(self) -> float:
        runs = [*self.unique, *self.duplicate, self.at_80, *self.healthz]
        return max((r.usage.rss_peak_mb for r in runs if r and r.usage), default=0.0)

    def to_json(self) -> dict[str, Any]:
        if self.skipped is not None:
            return {"backend": self.backend, "skipped": self.skipped}

        def best(runs: Sequence[Run]) -> dict[str, Any] | None:
            found = Backend.best(runs)
            return None if found is None else found.to_json()

        return {
            "backend": self.backend,
            "server_workers": self.workers,
            "ceiling": {
                "runs": [r.to_json() for r in self.ceiling],
                "best": best(self.ceiling),
            },
            "ceiling_no_table_lock": {
                "runs": [r.to_json() for r in self.ceiling_no_lock],
                "best": best(self.ceiling_no_lock),
            },
            "ceiling_pgbench": {
                "runs": [r.to_json() for r in self.ceiling_pgbench],
                "best": best(self.ceiling_pgbench),
            },
            "healthz": [r.to_json() for r in self.healthz],
            "unique": {
                "runs": [r.to_json() for r in self.unique],
                "best": best(self.unique),
            },
            "unique_at_80_percent": None
            if self.at_80 is None
            else self.at_80.to_json(),
            "duplicate": {
                "runs": [r.to_json() for r in self.duplicate],
                "best": best(self.duplicate),
            },
            "stored_events": self.stored_events,
            "prefill": self.prefill,
            "unique_with_stored_events": None
            if self.stored is None
            else self.stored.to_json(),
            "server_rss_mb": {
                "idle": round(self.rss_idle_mb, 1),
                "peak": round(self.rss_peak_mb, 1),
            },
            "store": self.store,
        }
