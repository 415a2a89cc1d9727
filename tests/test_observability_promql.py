"""Every PromQL query we ship names only metrics fleetgate (or vLLM inside a replica) exports.

Covers each Grafana panel target and variable query, and each recording / alert rule.
Exported names come from the metric objects in router/metrics.py and replicas/metrics.py
(with prometheus_client's suffixes: ``_total`` on counters, ``_bucket/_sum/_count`` on
histograms) plus VLLM_METRICS, an explicit list checked against the installed vLLM source.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from fleetgate.replicas import metrics as replica_metrics
from fleetgate.router import metrics as router_metrics

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "deploy" / "grafana"
RULES = REPO / "deploy" / "prometheus" / "rules"

# vLLM metrics the dashboards and rules may use, by type, as vllm/v1/metrics/loggers.py defines them.
VLLM_METRICS = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:num_preemptions": "counter",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:request_success": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
}

SERIES_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def series_names(name: str, kind: str) -> set[str]:
    return {name + suffix for suffix in SERIES_SUFFIXES[kind]}


def module_series_names(module: ModuleType) -> set[str]:
    metrics = [obj for obj in vars(module).values() if isinstance(obj, MetricWrapperBase)]
    assert metrics, f"no metrics found in {module.__name__}"
    return set().union(*(series_names(m._name, m._type) for m in metrics))


def exported_names() -> set[str]:
    vllm = set().union(*(series_names(name, kind) for name, kind in VLLM_METRICS.items()))
    return module_series_names(router_metrics) | module_series_names(replica_metrics) | vllm


# --- a small PromQL metric-name extractor ---------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_TOKEN = re.compile(
    r"(?P<number>0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)"
    r"|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<call>\s*\()?"
)
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "offset", "bool", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana ``$variables`` allowed)."""
    if "__name__" in expr:
        raise ValueError(f"selecting by __name__ is not checkable: {expr}")
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for token in _TOKEN.finditer(text):
        ident = token.group("ident")
        if ident and not token.group("call") and ident.lower() not in _KEYWORDS:
            names.add(ident)
    return names


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$")


def variable_selector(query: str) -> str:
    match = LABEL_VALUES.match(query.strip())
    assert match, f"unexpected variable query: {query}"
    return match.group("selector")


# --- what we ship ----------------------------------------------------------------------


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and query variable of every dashboard."""
    queries = []
    for path in sorted(GRAFANA.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                queries.append((f"{path.name}: {panel['title']} {target['refId']}", target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                queries.append((f"{path.name}: ${variable['name']}", variable_selector(variable["query"]["query"])))
    return queries


def rules() -> list[dict]:
    return [rule for path in sorted(RULES.glob("*.yml")) for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


# --- tests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("fleetgate_requests_total", {"fleetgate_requests_total"}),
        ('sum by (model, le) (rate(fleetgate_ttft_bucket{model=~"$model", le!="+Inf"}[$__rate_interval]))',
         {"fleetgate_ttft_bucket"}),
        ('histogram_quantile(0.95, sum(rate(a_bucket[5m])) by (le)) > 1e3', {"a_bucket"}),
        ('a / on (model) group_left(dialect) b offset 5m', {"a", "b"}),
        ("max_over_time(vllm:kv_cache_usage_perc[10m:1m]) > bool 0.9 unless c", {"vllm:kv_cache_usage_perc", "c"}),
        ('count_values("version", build_info) or vector(0)', {"build_info"}),
        ('label_replace(up{job="x"}, "dst", "$1", "src", "(.*)")', {"up"}),
        ("sum without (instance) (rate(x_total[1h30m])) * 60 + Inf", {"x_total"}),
        ("model:fleetgate_errors:ratio_rate5m > 0.05 and on (model) y > 1 / 60",
         {"model:fleetgate_errors:ratio_rate5m", "y"}),
    ],
)
def test_metric_names_extracts_exactly_the_selected_metrics(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_metric_names_refuses_name_matchers() -> None:
    with pytest.raises(ValueError):
        metric_names('{__name__=~"fleetgate_.*"}')


def test_exported_names_follow_prometheus_client_suffixes() -> None:
    names = exported_names()
    assert {"fleetgate_requests_total", "fleetgate_requests_in_flight", "fleetgate_time_to_first_token_seconds_bucket",
            "fleetgate_replica_kv_cache_usage_ratio", "vllm:generation_tokens_total"} <= names
    assert "fleetgate_requests" not in names


def test_vllm_metric_list_matches_the_installed_vllm_source() -> None:
    """Each name in VLLM_METRICS is created with that type in vLLM's Prometheus logger."""
    spec = importlib.util.find_spec("vllm")  # located, not imported (that would load torch)
    assert spec and spec.origin, "vLLM is not installed (make setup)"
    loggers = Path(spec.origin).parent / "v1" / "metrics" / "loggers.py"
    defined = {}
    for node in ast.walk(ast.parse(loggers.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            kind = {"_gauge_cls": "gauge", "_counter_cls": "counter", "_histogram_cls": "histogram"}.get(node.func.attr)
            for kw in node.keywords:
                if kind and kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    defined[kw.value.value] = kind
    assert {name: defined.get(name) for name in VLLM_METRICS} == VLLM_METRICS


def test_every_dashboard_query_names_only_exported_metrics() -> None:
    exported = exported_names()
    queries = dashboard_queries()
    assert len(queries) > 40
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= exported, f"{where}: not exported: {sorted(names - exported)}"


def test_every_rule_names_only_exported_or_recorded_metrics() -> None:
    allowed = exported_names() | recorded_names()
    for rule in rules():
        names = metric_names(rule["expr"])
        where = rule.get("record") or rule.get("alert")
        assert names, f"{where}: no metric in {rule['expr']!r}"
        assert names <= allowed, f"{where}: unknown metrics {sorted(names - allowed)}"


def test_routers_and_replicas_export_no_series_of_the_same_name() -> None:
    """A series name both exported (say the tokens a router routed to each replica and the replica's own count, with
    the same labels) would be added up by every query over it: the router's per-replica series are named
    fleetgate_router_replica_*."""
    assert not module_series_names(router_metrics) & module_series_names(replica_metrics)

