"""The Grafana dashboard in deploy/grafana/dashboard.json.

It is valid JSON of a current schema, every panel has a title and the
dashboard's Prometheus data source (a template variable), every query names
only series idemsync exports and every series family is shown, and every query
parses as PromQL (promtool, with Grafana's variables substituted; without
promtool that case skips, or under ``CI=true`` fails, as in test_alert_rules).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_alert_rules import (
    COUNTERS,
    GAUGES,
    HISTOGRAMS,
    SERIES,
    run_promtool,
    series_names,
    summed_gauges,
)

DASHBOARD = (
    Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboard.json"
)
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own variables a query may use.
GLOBAL_VARIABLES = {"__rate_interval", "__interval", "__range"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(within: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel but rows, also those inside collapsed rows."""
    for panel in dashboard()["panels"] if within is None else within:
        if panel["type"] == "row":
            yield from panels(panel.get("panels", []))
        else:
            yield panel


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard()["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_dashboard_is_json_of_a_current_schema() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0


def test_datasource_is_a_prometheus_template_variable() -> None:
    datasource = variables()["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"


def test_source_variable_lists_the_sources_from_a_real_series() -> None:
    source = variables()["source"]
    query = variable_query(source)
    assert re.fullmatch(r"label_values\(.+, source\)", query)
    assert series_names(query) and series_names(query) <= SERIES
    assert source["datasource"] == DATASOURCE
    assert source["multi"] and source["includeAll"] and source["allValue"] == ".*"


@pytest.mark.parametrize("panel", list(panels()), ids=lambda panel: panel["title"])
def test_panel_has_a_title_the_datasource_and_queries(panel: dict[str, Any]) -> None:
    assert panel["title"].strip()
    assert panel["datasource"] == DATASOURCE
    assert panel["targets"]
    for target in panel["targets"]:
        assert target.get("datasource", DATASOURCE) == DATASOURCE
        assert target["expr"].strip()


@pytest.mark.parametrize("expr", expressions())
def test_query_names_only_exported_series(expr: str) -> None:
    names = series_names(expr)
    assert names, "the query names no idemsync series"
    assert names <= SERIES, f"not exported by /metrics: {sorted(names - SERIES)}"
    used = set(re.findall(r"\$\{?(\w+)", expr))
    assert used <= set(variables()) | GLOBAL_VARIABLES, used


@pytest.mark.parametrize("expr", expressions())
def test_query_never_sums_a_gauge_over_instances(expr: str) -> None:
    assert not summed_gauges(expr)


def test_every_series_family_is_on_the_dashboard() -> None:
    used = set().union(*map(series_names, expressions()))
    for family in COUNTERS + GAUGES:
        assert family in used, family
    for histogram in HISTOGRAMS:
        assert f"{histogram}_bucket" in used, histogram


def test_buckets_are_only_read_through_histogram_quantile() -> None:
    for expr in expressions():
        for bucket in re.findall(r"idemsync_[a-z_]+_bucket", expr):
            assert f"(rate({bucket}" in expr
            assert expr.startswith("histogram_quantile(")
            assert re.search(r"by \([^)]*\ble\b[^)]*\)", expr), expr


def test_queries_parse_as_promql(tmp_path: Path) -> None:
    """Each query, Grafana's variables replaced by what they stand for, as a
    recording rule that ``promtool check rules`` parses."""
    substitutes = {"__rate_interval": "5m", "job": ".*", "source": ".*"}
    queries = expressions() + [
        re.sub(r"^label_values\((.+), \w+\)$", r"\1", variable_query(variable))
        for variable in variables().values()
        if variable["type"] == "query"
    ]
    rules = [
        {
            "record": f"dashboard:query_{number}",
            "expr": re.sub(r"\$\{?(\w+)\}?", lambda m: substitutes[m[1]], query),
        }
        for number, query in enumerate(queries)
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
