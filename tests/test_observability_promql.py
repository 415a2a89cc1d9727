"""Every PromQL query we ship names only metrics fleetgate (or vLLM inside a replica) exports, and
Prometheus itself parses every dashboard query.

Covers each Grafana panel target and variable query, and each recording / alert rule.
Exported names come from the metric objects in router/metrics.py and replicas/metrics.py
(with prometheus_client's suffixes: ``_total`` on counters, ``_bucket/_sum/_count`` on
histograms) plus VLLM_METRICS, an explicit list checked against the installed vLLM source.
The dashboard queries go through promtool (Debian's ``prometheus`` package, ``make setup``):
``check rules`` parses them all, and ``test rules`` evaluates the usage dashboard's panels on
synthetic per-key series with Prometheus' own engine.
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
from test_observability_rules import assert_ok, promtool  # tests/ is on sys.path

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



# --- Prometheus runs them ----------------------------------------------------------------

# Grafana's interval variables as Prometheus sees them once Grafana has filled them in.
GRAFANA_INTERVALS = {"__rate_interval": "2m", "__range": "1h"}


def as_promql(expr: str, chosen: dict[str, str] | None = None) -> str:
    """A dashboard query as Grafana sends it: ``$__rate_interval`` / ``$__range`` as durations, each template
    variable as its All value (``.*``) unless ``chosen``."""
    values = {**GRAFANA_INTERVALS, **(chosen or {})}
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ".*"), expr)


def test_prometheus_parses_every_dashboard_query(tmp_path: Path) -> None:
    queries = dashboard_queries()
    rules_file = tmp_path / "dashboards.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": as_promql(expr)} for i, (_, expr) in enumerate(queries)]}]}))
    result = promtool("check", "rules", rules_file)
    where = "\n".join(f"dashboard:query_{i} is {name}" for i, (name, _) in enumerate(queries))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{where}"
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


# Per-key usage as three routers' worth of series would have it (1 sample a minute for an hour; a counter
# that grows by n a minute is n/60 a second): key_a reads 3/4 of its input from the cache; key_b uses both
# models through two routers, a quarter of its requests failing; the keys beyond the label bound are "other",
# whose only requests the client hung up on. key_b has 5 requests waiting (3 + 2 at two routers), key_a none.
USAGE_SERIES = {
    'fleetgate_key_usage_tokens_total{key_id="key_a", model="m1", kind="input", instance="r1"}': "0+60x60",
    'fleetgate_key_usage_tokens_total{key_id="key_a", model="m1", kind="cached_input", instance="r1"}': "0+45x60",
    'fleetgate_key_usage_tokens_total{key_id="key_a", model="m1", kind="output", instance="r1"}': "0+120x60",
    'fleetgate_key_usage_tokens_total{key_id="key_a", model="m1", kind="reasoning", instance="r1"}': "0+30x60",
    'fleetgate_key_usage_tokens_total{key_id="key_b", model="m1", kind="input", instance="r1"}': "0+1200x60",
    'fleetgate_key_usage_tokens_total{key_id="key_b", model="m1", kind="output", instance="r1"}': "0+240x60",
    'fleetgate_key_usage_tokens_total{key_id="key_b", model="m1", kind="input", instance="r2"}': "0+600x60",
    'fleetgate_key_usage_tokens_total{key_id="key_b", model="m2", kind="input", instance="r1"}': "0+60x60",
    'fleetgate_key_usage_tokens_total{key_id="key_b", model="m2", kind="output", instance="r1"}': "0+60x60",
    'fleetgate_key_usage_tokens_total{key_id="other", model="m2", kind="input", instance="r2"}': "0+120x60",
    'fleetgate_key_usage_requests_total{key_id="key_a", model="m1", outcome="ok", instance="r1"}': "0+15x60",
    'fleetgate_key_usage_requests_total{key_id="key_b", model="m1", outcome="ok", instance="r1"}': "0+30x60",
    'fleetgate_key_usage_requests_total{key_id="key_b", model="m1", outcome="error", instance="r2"}': "0+30x60",
    'fleetgate_key_usage_requests_total{key_id="key_b", model="m2", outcome="ok", instance="r1"}': "0+60x60",
    'fleetgate_key_usage_requests_total{key_id="other", model="m2", outcome="client_closed", instance="r2"}': "0+15x60",
    'fleetgate_admission_waiting_by_key{key_id="key_b", model="m1", instance="r1"}': "3x60",
    'fleetgate_admission_waiting_by_key{key_id="key_b", model="m1", instance="r2"}': "2x60",
    'fleetgate_admission_waiting_by_key{key_id="key_a", model="m1", instance="r1"}': "0x60",
}

# (panel title, ref id, template variables chosen) -> what the panel shows at the end of the hour.
PanelExpectations = dict[tuple[str, str, tuple[tuple[str, str], ...]], dict[str, float]]
USAGE_EXPECTED: PanelExpectations = {
    # Input + output only: key_a's cached input and reasoning are parts of them.
    ("Tokens/s", "A", ()): {"{}": 41},
    ("Tokens in range", "A", ()): {"{}": 41 * 3600},
    ("Requests in range", "A", ()): {"{}": 2.5 * 3600},
    ("Error ratio in range", "A", ()): {"{}": 0.2},
    ("Waiting now", "A", ()): {"{}": 5},
    ("Tokens/s per key", "A", ()): {'{key_id="key_a"}': 3, '{key_id="key_b"}': 36, '{key_id="other"}': 2},
    ("Tokens/s per key", "A", (("key_id", "key_a"),)): {'{key_id="key_a"}': 3},
    ("Top keys by tokens in range", "A", ()): {
        '{key_id="key_b"}': 36 * 3600, '{key_id="key_a"}': 3 * 3600, '{key_id="other"}': 2 * 3600},
    ("Top keys by tokens in range", "A", (("model", "m2"),)): {'{key_id="key_b"}': 7200, '{key_id="other"}': 7200},
    ("Usage in range by key and model", "A", ()): {
        '{key_id="key_a", model="m1"}': 3600, '{key_id="key_b", model="m1"}': 30 * 3600,
        '{key_id="key_b", model="m2"}': 3600, '{key_id="other", model="m2"}': 2 * 3600},
    ("Usage in range by key and model", "B", ()): {'{key_id="key_a", model="m1"}': 0.75 * 3600},
    ("Usage in range by key and model", "F", ()): {'{key_id="key_b", model="m1"}': 0.5 * 3600},
    ("Tokens/s per model", "A", ()): {
        '{model="m1", kind="input"}': 31, '{model="m1", kind="output"}': 6,
        '{model="m2", kind="input"}': 3, '{model="m2", kind="output"}': 1},
    # A key without a cached_input (or error) series reads 0, not nothing.
    ("Cached share of input per key", "A", ()): {
        '{key_id="key_a"}': 0.75, '{key_id="key_b"}': 0, '{key_id="other"}': 0},
    ("Requests/s per key by outcome", "A", ()): {
        '{key_id="key_a", outcome="ok"}': 0.25, '{key_id="key_b", outcome="ok"}': 1.5,
        '{key_id="key_b", outcome="error"}': 0.5, '{key_id="other", outcome="client_closed"}': 0.25},
    ("Error ratio per key", "A", ()): {'{key_id="key_a"}': 0, '{key_id="key_b"}': 0.25, '{key_id="other"}': 0},
    ("Waiting by key", "A", ()): {'{key_id="key_a", model="m1"}': 0, '{key_id="key_b", model="m1"}': 5},
    ("Who is waiting now", "A", ()): {'{key_id="key_b"}': 5},
}


def evaluate_panels(
    tmp_path: Path, dashboard: str, series: dict[str, str], expected: PanelExpectations
) -> dict[str, list[str]]:
    """promtool evaluates each (panel title, ref id, template variables chosen) query of ``dashboard`` on
    ``series`` (1 sample a minute) at the end of the hour against ``expected``; the dashboard's query panels
    (title: their queries)."""
    board = json.loads((GRAFANA / dashboard).read_text())
    targets = {(p["title"], t["refId"]): t["expr"] for p in board["panels"] for t in p.get("targets", [])}
    tests = [{
        "interval": "1m",
        "input_series": [{"series": name, "values": values} for name, values in series.items()],
        "promql_expr_test": [
            {"expr": as_promql(targets[title, ref], dict(chosen)), "eval_time": "60m",
             "exp_samples": [{"labels": labels, "value": value} for labels, value in samples.items()]}
            for (title, ref, chosen), samples in expected.items()
        ],
    }]
    test_file = tmp_path / f"{Path(dashboard).stem}_test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests}))
    assert_ok(promtool("test", "rules", test_file))
    panels: dict[str, list[str]] = {}
    for (title, _), expr in targets.items():
        panels.setdefault(title, []).append(expr)
    return panels


def test_usage_panels_compute_each_keys_usage_on_prometheus(tmp_path: Path) -> None:
    evaluated = evaluate_panels(tmp_path, "usage.json", USAGE_SERIES, USAGE_EXPECTED)
    # Every panel with a query is evaluated above.
    assert set(evaluated) == {title for title, _, _ in USAGE_EXPECTED}


# Server-side tool calls as two routers' worth of series would have them (1 sample a minute for an hour): python
# 2 ok calls a second (1 + 1 at two routers) and 0.1 a second timed out, bash 0.5 ok a second. python's 60
# calls a minute at r1: half within 0.1 s (none within 0.05 s), 36 within 0.5 s, all within 1 s; bash's 30 all
# within 0.05 s.
TOOL_BUCKETS = {"python": {"0.05": 0, "0.1": 30, "0.25": 30, "0.5": 36, "1": 60, "+Inf": 60},
                "bash": {"0.05": 30, "0.1": 30, "0.25": 30, "0.5": 30, "1": 30, "+Inf": 30}}
TOOL_SERIES = {
    'fleetgate_server_tool_calls_total{tool="python", outcome="ok", instance="r1"}': "0+60x60",
    'fleetgate_server_tool_calls_total{tool="python", outcome="ok", instance="r2"}': "0+60x60",
    'fleetgate_server_tool_calls_total{tool="python", outcome="timeout", instance="r2"}': "0+6x60",
    'fleetgate_server_tool_calls_total{tool="bash", outcome="ok", instance="r1"}': "0+30x60",
    **{f'fleetgate_server_tool_seconds_bucket{{tool="{tool}", le="{le}", instance="r1"}}': f"0+{count}x60"
       for tool, buckets in TOOL_BUCKETS.items() for le, count in buckets.items()},
}
TOOL_EXPECTED: PanelExpectations = {
    ("Tool calls/s by tool and outcome", "A", ()): {
        '{tool="python", outcome="ok"}': 2, '{tool="python", outcome="timeout"}': 0.1,
        '{tool="bash", outcome="ok"}': 0.5},
    ("Tool calls/s by tool and outcome", "A", (("tool", "bash"),)): {'{tool="bash", outcome="ok"}': 0.5},
    # p50: the 30th of 60 calls, at the top of the 0.05..0.1 bucket; p95: the 57th, 21/24 into the 0.5..1 bucket.
    ("Tool latency by tool", "A", ()): {'{tool="python"}': 0.1, '{tool="bash"}': 0.025},
    ("Tool latency by tool", "B", ()): {'{tool="python"}': 0.9375, '{tool="bash"}': 0.0475},
}


def test_tool_panels_compute_calls_and_latency_per_tool_on_prometheus(tmp_path: Path) -> None:
    panels = evaluate_panels(tmp_path, "overview.json", TOOL_SERIES, TOOL_EXPECTED)
    # Every panel that queries the tool metrics is evaluated above.
    tool_panels = {title for title, exprs in panels.items() if any("fleetgate_server_tool_" in e for e in exprs)}
    assert tool_panels == {title for title, _, _ in TOOL_EXPECTED}
