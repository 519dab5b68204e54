"""The Prometheus and Grafana files in deploy/ hold together: promtool accepts the config and the rules and passes
the alerts' unit tests (deploy/prometheus/alerts_test.yml), and every metric name an alert, a recording rule or a
dashboard panel reads is one that something exports.

A misspelt or renamed metric in PromQL is not an error anywhere else: the query just returns nothing, the panel
stays empty and the alert never fires. So the names are read out of every expression and compared with what
shared/metrics.py registers (with the `_total`, `_bucket`, `_sum`, `_count` series its types expose), the backlog
gauges read at scrape time, the recording rules' own names, and a short list of names other exporters give
(test_prometheus_scrape.py checks those against a real scrape).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "cmsrag.json"
ROWS = ["Freshness", "Pipeline", "Queue", "API", "Cost"]
# Prometheus's own per-target series, and the rabbitmq_prometheus plugin's aggregated endpoint (:15692/metrics)
EXTERNAL = frozenset({"up", "rabbitmq_process_resident_memory_bytes", "rabbitmq_resident_memory_limit_bytes",
                      "rabbitmq_connections", "rabbitmq_alarms_memory_used_watermark",
                      "rabbitmq_alarms_free_disk_space_watermark"})
SERIES_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                   "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                      "offset", "bool", "inf", "nan"})
STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
NUMBERS = re.compile(r"(?<![\w:])\d[\w.]*(?:[eE][+-]?\d+)?")
IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once strings, label matchers, ranges,
    grouping clauses, numbers, Grafana variables, keywords and function calls are taken out."""
    text = STRINGS.sub('""', expr)
    for pattern in (r"\{[^}]*\}", r"\[[^\]]*\]", GROUPING, r"\$\{?\w+\}?", NUMBERS):
        text = re.sub(pattern, " ", text)
    return {m.group() for m in IDENTIFIER.finditer(text)
            if m.group() not in KEYWORDS and not text[m.end():].lstrip().startswith("(")}


def exported_names() -> set[str]:
    """Every series name cmsrag's processes expose: the registry shared/metrics.py fills, the scrape-time gauges."""
    from prometheus_client import REGISTRY

    from shared import metrics

    names = {family.name + suffix for family in REGISTRY.collect()
             for suffix in SERIES_SUFFIXES.get(family.type, ("",))}
    return names | {family.name for family in metrics.SCRAPE_TIME_GAUGES}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"] for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable (`label_values(metric, label)` too)."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            label_values = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
            yield f"variable {variable['name']!r}", label_values.group(1) if label_values else query


def all_expressions() -> list[tuple[str, str]]:
    found = [(f"rule {rule.get('record') or rule.get('alert')}", rule["expr"]) for rule in rules()]
    return found + list(dashboard_expressions(json.loads(DASHBOARD.read_text(encoding="utf-8"))))


def unknown_names(expressions: list[tuple[str, str]]) -> dict[str, set[str]]:
    """{where: names nothing exports} for the expressions that read any such name."""
    known = exported_names() | recorded_names() | EXTERNAL
    return {where: missing for where, expr in expressions if (missing := metric_names(expr) - known)}


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (site, le) (rate(cmsrag_freshness_lag_seconds_bucket{site=~"$site"}[$__rate_interval]))',
     {"cmsrag_freshness_lag_seconds_bucket"}),
    ('a:b:c{endpoint="/v1/search", x="rate(y)"} > 1 and on (queue) d offset 1h', {"a:b:c", "d"}),
    ("x == 0 and on (queue) y{state='ready'} > 1e3 unless ignoring(q) group_left (p) z", {"x", "y", "z"}),
    ('label_replace(up, "dst", "$1", "job", "(.*)") * 3600 / bool 0.05', {"up"}),
    ("absent(up{job=\"worker\"} == 1)", {"up"}),
    ("histogram_quantile(0.99, sum without (instance) (rate(h_bucket[5m:1m])))", {"h_bucket"}),
])
def test_metric_names_are_read_out_of_promql(expr, names):
    assert metric_names(expr) == names


@pytest.mark.parametrize(("expr", "unknown"), [
    ("rate(cmsrag_bogus_total[5m]) / sum by (site) (cmsrag_pending_documents)", {"cmsrag_bogus_total"}),
    ("rate(cmsrag_webhooks[5m])", {"cmsrag_webhooks"}),  # a counter's series ends in _total
    ("cmsrag_freshness_lag_seconds > 1", {"cmsrag_freshness_lag_seconds"}),  # a histogram has no bare series
    ("site:cmsrag_nothing:max > 0", {"site:cmsrag_nothing:max"}),  # not a recording rule
    ("rabbitmq_queue_messages_ready", {"rabbitmq_queue_messages_ready"}),  # not on the list of outside names
    ("sum(rate(cmsrag_webhooks_total[5m])) + site:cmsrag_pending_documents:max + up", set()),
])
def test_the_name_check_reports_names_nothing_exports(expr, unknown):
    assert unknown_names([("test", expr)]) == ({"test": unknown} if unknown else {})


def test_every_metric_the_rules_and_the_dashboard_read_is_exported():
    expressions = all_expressions()
    assert len(expressions) > 40, "the rules and the dashboard's panels were all read"
    assert unknown_names(expressions) == {}


def test_every_alert_waits_has_a_severity_and_says_what_to_do():
    alerts = [rule for rule in rules() if "alert" in rule]
    assert len(alerts) >= 10
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", alert.get("for", "")), f"{name}: a `for:` duration"
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], name
        assert re.fullmatch(r"docs/operations\.md#[a-z0-9-]+", notes["runbook_url"]), name


def test_every_alert_is_tested_firing_and_not_firing():
    cases: dict[str, set[bool]] = {}
    for test in load_yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert {name for name in alerts if cases.get(name) != {True, False}} == set()


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool", "install Debian's prometheus package (scripts/install-system-deps.sh)")
    assert path is not None
    return path


@pytest.mark.parametrize("args", [["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                                  ["test", "rules", "alerts_test.yml"]], ids=lambda a: " ".join(a[:2]))
def test_promtool_accepts_the_config_and_the_rules(promtool, args):
    r = subprocess.run([promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_the_dashboard_has_its_rows_and_reads_the_provisioned_datasource():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert [p["title"] for p in dashboard["panels"] if p["type"] == "row"] == ROWS
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    source = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    variable = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert variable["current"]["value"] == source["uid"] and variable["query"] == source["type"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${" + variable["name"] + "}", panel["title"]


def test_the_compose_file_mounts_the_files_where_the_configs_look_for_them():
    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    provider = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "cmsrag.yml")["providers"][0]
    grafana = {v.split(":")[0]: v.split(":")[1] for v in services["grafana"]["volumes"]}
    assert grafana["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert grafana["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    prometheus = {v.split(":")[0]: v.split(":")[1] for v in services["prometheus"]["volumes"]}
    config = prometheus["./deploy/prometheus/prometheus.yml"]
    for rule_file in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["rule_files"]:
        assert prometheus[f"./deploy/prometheus/{rule_file}"] == str(Path(config).parent / rule_file)


@pytest.mark.parametrize(("value", "served"), [(None, True), ("on", True), ("ON ", True), ("", True), ("off", False)])
def test_cmsrag_metrics_off_leaves_requests_untimed_and_metrics_unserved(make_settings, value, served):
    from flask import Flask
    from prometheus_client import REGISTRY

    from shared import metrics
    from shared.settings import Settings

    env = {"CMSRAG_SITES": '[{"name": "docs", "kind": "files", "path": "."}]'}
    if value is not None:
        env["CMSRAG_METRICS"] = value
    enabled = Settings.from_env(env).metrics_enabled
    app = Flask("switch")
    app.add_url_rule("/ping", "ping", lambda: "pong")
    metrics.instrument(app, "switch", enabled=enabled)
    client = app.test_client()
    labels = {"service": "switch", "endpoint": "/ping", "method": "GET", "status_class": "2xx"}
    before = REGISTRY.get_sample_value("cmsrag_http_request_duration_seconds_count", labels) or 0.0
    assert client.get("/ping").status_code == 200
    after = REGISTRY.get_sample_value("cmsrag_http_request_duration_seconds_count", labels) or 0.0
    assert (after - before, client.get("/metrics").status_code) == ((1.0, 200) if served else (0.0, 404))


def test_a_misspelt_cmsrag_metrics_is_refused():
    from shared.errors import ConfigError
    from shared.settings import Settings

    env = {"CMSRAG_SITES": '[{"name": "docs", "kind": "files", "path": "."}]', "CMSRAG_METRICS": "of"}
    with pytest.raises(ConfigError, match="CMSRAG_METRICS"):
        Settings.from_env(env)


def test_every_runbook_link_leads_to_a_section_of_the_operations_guide():
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    anchors = {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
               for heading in re.findall(r"^#{1,6} (.+)$", guide, re.M)}
    links = {rule["annotations"]["runbook_url"].split("#", 1)[1] for rule in rules() if "alert" in rule}
    assert links - anchors == set(), "docs/operations.md needs a heading for each runbook_url of alerts.yml"
