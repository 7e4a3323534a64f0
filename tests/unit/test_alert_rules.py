"""The Prometheus alert rules in deploy/prometheus (specification §9).

``promtool check rules`` accepts them, ``promtool test rules`` runs their unit
tests (each alert fires on some series and stays quiet on others), and they
name only the series idemsync exports. promtool comes from the Debian package
``prometheus`` (``.ci/run`` installs it). Without it the promtool cases skip
with one line saying why, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
RUNBOOK = ROOT / "deploy" / "runbook.md"

COUNTERS = (
    "idemsync_deliveries_total",
    "idemsync_requests_refused_total",
    "idemsync_retries_total",
    "idemsync_version_conflicts_total",
)
HISTOGRAMS = ("idemsync_retry_delay_seconds", "idemsync_processing_seconds")
# Read from the store at each scrape: every instance reports the same value.
GAUGES = (
    "idemsync_projection_lag_events",
    "idemsync_projection_position",
    "idemsync_projection_failed",
    "idemsync_parked_deliveries",
    "idemsync_parked_oldest_seconds",
)
# Set once at start: one series per configured source, for joins.
INFO = ("idemsync_source_info",)
# Every series name /metrics exports: a histogram is its three series.
SERIES = frozenset(
    COUNTERS
    + GAUGES
    + INFO
    + tuple(
        f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")
    )
)
SERIES_NAME = re.compile(r"\bidemsync_[a-z_]+")
# Labels an alert may keep: a deployment (job) and the bounded labels.
BOUNDED_LABELS = frozenset({"job", "source", "reason", "projection"})


def promtool() -> str:
    """The promtool binary; skip the test (fail it under CI=true) without it."""
    found = shutil.which("promtool")
    if found is not None:
        return found
    problem = (
        "promtool not found on PATH "
        "(apt-get install prometheus, or run .ci/run, which installs it)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {problem}", pytrace=False)
    pytest.skip(problem)


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def series_names(expr: str) -> set[str]:
    return set(SERIES_NAME.findall(expr))


def summed_gauges(expr: str) -> list[str]:
    """The gauges ``expr`` sums: each instance reports the store's value, so
    a sum over instances counts it once per instance (max is the value)."""
    return [
        gauge
        for gauge in GAUGES
        if re.search(rf"\bsum\s*(?:by\s*\([^)]*\)\s*)?\(\s*{gauge}\b", expr)
    ]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def rule_id(rule: dict[str, Any]) -> str:
    return str(rule["alert"])


def test_promtool_check_rules_accepts_the_rules() -> None:
    result = run_promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_contract_alerts_are_all_there() -> None:
    assert {rule_id(rule) for rule in alert_rules()} >= {
        "IdemsyncDuplicateSurge",
        "IdemsyncRetryStorm",
        "IdemsyncRejectedSpike",
        "IdemsyncParkedBacklog",
        "IdemsyncProjectionLag",
        "IdemsyncProjectionFailed",
    }


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_rule_names_only_exported_series(rule: dict[str, Any]) -> None:
    names = series_names(rule["expr"])
    assert names, "the expression names no idemsync series"
    assert names <= SERIES, f"not exported by /metrics: {sorted(names - SERIES)}"


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_rule_aggregates_to_bounded_labels(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    assert " without " not in expr and "without(" not in expr
    groupings = re.findall(r"\b(?:sum|max|min) by \(([^)]*)\)", expr)
    assert groupings, "every series is aggregated away to bounded labels"
    for grouping in groupings:
        labels = {label.strip() for label in grouping.split(",")}
        assert labels <= BOUNDED_LABELS, grouping


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_rule_never_sums_a_gauge_over_instances(rule: dict[str, Any]) -> None:
    assert not summed_gauges(rule["expr"])


@pytest.mark.parametrize("rule", alert_rules(), ids=rule_id)
def test_rule_has_for_severity_and_a_runbook(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook"}
    label = "projection" if "by (job, projection)" in rule["expr"] else "source"
    for name in ("summary", "description"):
        assert f"{{{{ $labels.{label} }}}}" in annotations[name], name
    runbook = annotations["runbook"]
    assert re.search(r"`idemsync [a-z]+|GET /", runbook), "names a command to run"
    anchor = re.search(r"deploy/runbook\.md#([a-z-]+)", runbook)
    assert anchor, "links its runbook section"
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    assert anchor.group(1) in headings


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = [
        case
        for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in group["alert_rule_test"]
    ]
    alerts = {rule_id(rule) for rule in alert_rules()}
    assert {case["alertname"] for case in cases} <= alerts
    for alert in sorted(alerts):
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"{alert} never fires"
        assert any(not case["exp_alerts"] for case in mine), f"{alert} never quiet"


def test_unit_test_series_are_exported_series() -> None:
    groups = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    names = {
        series["series"].split("{", 1)[0]
        for group in groups
        for series in group["input_series"]
    }
    assert names <= SERIES, sorted(names - SERIES)


def test_series_and_label_values_are_those_metrics_exports() -> None:
    """SERIES is what infrastructure.metrics exports (its ``_created``
    samples aside: multiprocess mode has none), and the unit tests' series
    use its outcomes and refusal reasons."""
    from domain.delivery import Outcome
    from infrastructure.metrics import REFUSAL_REASONS, Metrics, StoreGauges

    families = [*Metrics(["acme"]).registry.collect()]
    families += StoreGauges(lambda: [], lambda: {}, ["acme"]).collect()
    exported = {sample.name for family in families for sample in family.samples}
    exported |= {family.name for family in families if family.type == "gauge"}
    assert {name for name in exported if not name.endswith("_created")} == SERIES

    text = RULE_TESTS.read_text()
    assert set(re.findall(r'outcome="(\w+)"', text)) <= {o.value for o in Outcome}
    assert set(re.findall(r'reason="(\w+)"', text)) <= set(REFUSAL_REASONS)
