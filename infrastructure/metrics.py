"""The Prometheus series of specification §9, and their exposition.

Labels are bounded: ``source`` is a configured source's name or ``_unknown``
(an unknown source never creates a series), ``outcome`` and ``reason`` come
from fixed lists, ``aggregate`` and ``projection`` from the code.

Several worker processes: ``idemsync serve`` sets ``PROMETHEUS_MULTIPROC_DIR``
before any worker imports prometheus-client, so each process writes its
counters and histograms to files there and ``/metrics``, in whichever worker
answers, sums them all (prometheus-client's multiprocess mode). Gauges
(projections, parked backlog) are not kept in processes at all: they are read
from the store at scrape time, so every worker reports the same, true values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from domain.application import AGGREGATES
from domain.delivery import Answer, Outcome
from projections.runner import Status

UNKNOWN_SOURCE = "_unknown"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
PROCESSING_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
RETRY_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400)
"""Seconds from a first receipt to a retry: partners retry after seconds
(a lost response) to days (Stripe retries for three days)."""
REFUSAL_REASONS = (
    "unknown_source",
    "payload_too_large",
    "headers_too_large",
    "body_timeout",
    "client_disconnected",
    "unauthorized",
    "missing_key",
    "invalid_payload",
    "overloaded",
    "store_unavailable",
    "internal_error",
)


class StoreGauges(Collector):
    """Gauges read from the store at each scrape, the same in every worker:
    each projection's lag, position and failure, and each source's parked
    deliveries not yet resolved (how many, and the age of the oldest).
    Nothing when the store does not answer (the scrape still shows every
    other series)."""

    def __init__(
        self,
        status: Callable[[], Sequence[Status]],
        parked: Callable[[], Mapping[str, tuple[int, datetime]]],
        sources: Iterable[str],
    ) -> None:
        self.status = status
        self.parked = parked
        self.sources = sorted(sources)

    def collect(self) -> Iterator[Metric]:
        yield from self._projections()
        yield from self._parked()

    def _projections(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "idemsync_projection_lag_events",
            "Events in the log that the projection has not applied yet.",
            labels=["projection"],
        )
        position = GaugeMetricFamily(
            "idemsync_projection_position",
            "The last event (notification id) the projection applied.",
            labels=["projection"],
        )
        failed = GaugeMetricFamily(
            "idemsync_projection_failed",
            "1 while the projection keeps failing (state failed: it is "
            "retried every 30 s until it applies again), else 0.",
            labels=["projection"],
        )
        try:
            statuses = self.status()
        except Exception:
            statuses = []
        for status in statuses:
            lag.add_metric([status.name], status.lag)
            position.add_metric([status.name], status.position)
            failed.add_metric([status.name], 1 if status.state == "failed" else 0)
        yield from (lag, position, failed)

    def _parked(self) -> Iterator[Metric]:
        count = GaugeMetricFamily(
            "idemsync_parked_deliveries",
            "Deliveries answered parked whose object has not been created yet.",
            labels=["source"],
        )
        oldest = GaugeMetricFamily(
            "idemsync_parked_oldest_seconds",
            "Age of the oldest delivery still parked (0 when none is).",
            labels=["source"],
        )
        try:
            backlog = self.parked()
        except Exception:
            return
        now = datetime.now(UTC)
        for source in self.sources:
            waiting, since = backlog.get(source, (0, now))
            count.add_metric([source], waiting)
            oldest.add_metric([source], max((now - since).total_seconds(), 0.0))
        yield from (count, oldest)


class Metrics:
    """Counts deliveries, refusals, retries and conflicts for ``sources``."""

    def __init__(self, sources: Iterable[str]) -> None:
        self.sources = frozenset(sources)
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "idemsync_deliveries",
            "Deliveries answered 2xx, by source and outcome.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.refused = Counter(
            "idemsync_requests_refused",
            "Webhook requests answered 4xx or 5xx, by source and reason.",
            ["source", "reason"],
            registry=self.registry,
        )
        self.retries = Counter(
            "idemsync_retries",
            "Duplicates: a partner sent a delivery again.",
            ["source"],
            registry=self.registry,
        )
        self.retry_delay = Histogram(
            "idemsync_retry_delay_seconds",
            "Time from a delivery's first receipt to each of its duplicates.",
            ["source"],
            buckets=RETRY_BUCKETS,
            registry=self.registry,
        )
        self.processing = Histogram(
            "idemsync_processing_seconds",
            "Time to decide and commit a unique delivery, by outcome.",
            ["source", "outcome"],
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        )
        self.conflicts = Counter(
            "idemsync_version_conflicts",
            "Commits lost to a concurrent writer and decided again.",
            ["aggregate"],
            registry=self.registry,
        )
        self.source_info = Gauge(
            "idemsync_source_info",
            "1 per configured source, labelled with its scheme, mapping and "
            "namespace (join on source to break other series down by them).",
            ["source", "scheme", "mapping", "namespace"],
            registry=self.registry,
            multiprocess_mode="max",
        )
        self._create_series()

    def _create_series(self) -> None:
        """Every series a configured source can have, at zero, so that a
        first increment is a visible change to ``rate()``."""
        for source in self.sources:
            for outcome in Outcome:
                self.deliveries.labels(source, outcome.value)
                if outcome is not Outcome.DUPLICATE:
                    self.processing.labels(source, outcome.value)
            for reason in REFUSAL_REASONS:
                self.refused.labels(source, reason)
            self.retries.labels(source)
            self.retry_delay.labels(source)
        self.refused.labels(UNKNOWN_SOURCE, "unknown_source")
        for aggregate in (*AGGREGATES, "delivery"):
            self.conflicts.labels(aggregate)

    def describe(self, source: str, scheme: str, mapping: str, namespace: str) -> None:
        """The ``idemsync_source_info`` series of a configured source."""
        self.source_info.labels(source, scheme, mapping, namespace).set(1)

    def source(self, name: str) -> str:
        """The ``source`` label of a request for ``name``."""
        return name if name in self.sources else UNKNOWN_SOURCE

    def answered(self, answer: Answer, seconds: float, now: datetime) -> None:
        """A 2xx: count it; time a unique delivery, or a retry's delay."""
        source = self.source(answer.source)
        outcome = answer.outcome.value
        self.deliveries.labels(source, outcome).inc()
        if answer.outcome is Outcome.DUPLICATE:
            self.retries.labels(source).inc()
            if answer.first_received_at is not None:
                delay = (now - answer.first_received_at).total_seconds()
                self.retry_delay.labels(source).observe(max(delay, 0.0))
        else:
            self.processing.labels(source, outcome).observe(seconds)

    def refusal(self, source: str, reason: str) -> None:
        known = reason if reason in REFUSAL_REASONS else "internal_error"
        self.refused.labels(self.source(source), known).inc()

    def conflict(self, aggregate: str) -> None:
        self.conflicts.labels(aggregate).inc()

    def exposition(self, gauges: Collector | None = None) -> bytes:
        """The Prometheus text of every series (of every worker process in
        multiprocess mode), with ``gauges`` read now."""
        if os.environ.get(MULTIPROCESS_DIR):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            registry = CollectorRegistry()
            registry.register(_Forward(self.registry))
        if gauges is not None:
            registry.register(gauges)
        return generate_latest(registry)


class _Forward(Collector):
    """Another registry's metrics, so that one exposition can add gauges to
    them without registering the gauges twice over the app's life."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
