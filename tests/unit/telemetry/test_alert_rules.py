"""deploy/prometheus (alert rules, their promtool unit tests, the scrape config) and deploy/grafana: valid for
promtool, and every metric they query is one the relay or the API exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import prometheus_client
import pytest
import yaml
from prometheus_client.registry import CollectorRegistry

import api.metrics
import relay.metrics  # noqa: F401 - registers the relay's metrics in prometheus_client's default registry
from genesis.telemetry.metric_names import OUTBOX_GAUGES

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
SCRAPE_SERIES = {"up"}  # Prometheus' own, one per scraped target
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus; .ci/run installs it)")
    return subprocess.run(["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules_and_the_scrape_config() -> None:
    for args in (("check", "rules", "alerts.yml"), ("check", "config", "prometheus.yml")):
        checked = _promtool(*args)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_unit_tests_pass() -> None:
    tested = _promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _alerts() -> dict[str, str]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet() -> None:
    cases = [
        case
        for test in yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    for alert in _alerts():
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"{alert} is never seen firing"
        assert any(not case["exp_alerts"] for case in mine), f"{alert} is never seen quiet"


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers, ranges, label
    lists and function or aggregation names are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        if not expr[match.end() :].lstrip().startswith("(") and match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def _exported() -> set[str]:
    """Every series name the relay's and the API's /metrics can carry (labelled ones before their first sample)."""
    names = {gauge.name for gauge in OUTBOX_GAUGES}
    registries: list[CollectorRegistry] = [prometheus_client.REGISTRY, api.metrics.REGISTRY]
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def test_the_name_finder_finds_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(genesis_api_request_seconds_bucket{route!~"x|y"}[5m])))'
        " / on (job) group_left max without (instance) (up{job='a'} offset 5m) > bool 1e3"
        " and deriv(max(genesis_outbox_backlog)[10m:1m]) > 0 unless absent(other_metric)"
    )
    assert metric_names(expr) == {"genesis_api_request_seconds_bucket", "up", "genesis_outbox_backlog", "other_metric"}


def test_every_metric_an_alert_queries_is_exported() -> None:
    used = {name for expr in _alerts().values() for name in metric_names(expr)}
    assert {"genesis_relay_broker_up", "genesis_relay_listener_up", "genesis_outbox_failed"} <= used
    assert used - _exported() - SCRAPE_SERIES == set()


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "genesis.json").read_text())
    used = {name for panel in dashboard["panels"] for t in panel["targets"] for name in metric_names(t["expr"])}
    assert "genesis_relay_publish_seconds_bucket" in used
    assert used - _exported() - SCRAPE_SERIES == set()


def test_every_alert_says_where_its_runbook_is() -> None:
    operations = (DEPLOY.parent / "docs" / "operations.md").read_text()
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        assert rule["annotations"]["runbook"] == "docs/operations.md#alerts", rule["alert"]
        assert f"`{rule['alert']}`" in operations, f"docs/operations.md does not say what to do about {rule['alert']}"
    assert "\n## Alerts\n" in operations
