"""Builds the Grafana dashboards of deploy/grafana/ (overview.json, replicas.json).

The JSON files are committed (Grafana and the Helm chart load them as they are);
this script is where they are edited, so every panel is laid out and wired to the
``${datasource}`` variable the same way. After a change:

    .venv/bin/python deploy/grafana/build_dashboards.py          # rewrite the JSON files
    .venv/bin/python deploy/grafana/build_dashboards.py --check  # exit 1 if they are stale

Queries use raw metrics with ``$__rate_interval`` (not the recording rules), so the
dashboards work on any Prometheus that scrapes fleetgate, with or without its rules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"
QUANTILES = (0.5, 0.95, 0.99)
FULL_WIDTH = 24
STAT_HEIGHT = 4
GRAPH_HEIGHT = 8
# router/errors.py ErrorKind values that are the cluster's fault, not the client's.
SERVER_ERROR_TYPES = "api_error|overloaded"

# The router's per-replica token counters (router/metrics.py): the prompt tokens of the requests it routed and
# the part the engine read from its prefix cache, and what its prefix index predicted.
ROUTED_PROMPT = "fleetgate_router_replica_prompt_tokens_total"
ROUTED_CACHED = "fleetgate_router_replica_cached_tokens_total"
PREDICTED_CACHED = "fleetgate_prefix_predicted_cached_tokens_total"

Panel = dict[str, Any]
Query = tuple[str, str]  # (PromQL, legend format)


# --- building blocks -----------------------------------------------------------------


def _targets(queries: list[Query]) -> list[dict[str, Any]]:
    return [
        {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
         "range": True, "editorMode": "code"}
        for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(title: str, description: str, queries: list[Query], unit: str, **defaults: Any) -> Panel:
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10,
                                                  "showPoints": "never", "spanNulls": True}, **defaults},
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": _targets(queries),
    }


def stat(title: str, description: str, query: Query, unit: str, steps: list[tuple[float | None, str]]) -> Panel:
    return {
        "type": "stat", "title": title, "description": description, "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": [
                {"value": value, "color": color} for value, color in steps]}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto", "justifyMode": "auto",
                    "orientation": "auto"},
        "targets": _targets([query]),
    }


def quantile_queries(metric: str, selector: str, by: str) -> list[Query]:
    """p50 / p95 / p99 of a histogram, per ``by`` label."""
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}{RATE})))",
         f"p{round(q * 100)} {{{{{by}}}}}")
        for q in QUANTILES
    ]


def rate_sum(metric: str, selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}{RATE}))"


def layout(rows: list[list[Panel]]) -> list[Panel]:
    """Give every panel an id and a grid position: each inner list is one row of equal widths."""
    panels: list[Panel] = []
    y = 0
    for row in rows:
        width = FULL_WIDTH // len(row)
        height = STAT_HEIGHT if all(p["type"] == "stat" for p in row) else GRAPH_HEIGHT
        for i, panel in enumerate(row):
            grid_position = {"h": height, "w": width, "x": i * width, "y": y}
            panels.append({"id": len(panels) + 1, "gridPos": grid_position, **panel})
        y += height
    return panels


def datasource_variable() -> dict[str, Any]:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": ""}


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A multi-value label variable with an All option (matching every value)."""
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE, "definition": query,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "options": [],
            "sort": 1, "hide": 0, "regex": ""}


def dashboard(
    uid: str, title: str, description: str, variables: list[dict[str, Any]], rows: list[list[Panel]]
) -> dict[str, Any]:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["fleetgate"],
        "schemaVersion": SCHEMA_VERSION, "version": 1, "editable": True, "graphTooltip": 1,
        "timezone": "browser", "refresh": "10s", "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"title": "fleetgate", "type": "dashboards", "tags": ["fleetgate"], "asDropdown": False,
                   "includeVars": True, "keepTime": True}],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": layout(rows),
    }


# --- the dashboards ------------------------------------------------------------------


def overview() -> dict[str, Any]:
    m = 'model=~"$model"'
    return dashboard(
        "fleetgate-overview", "fleetgate / Overview",
        "The shared endpoint as clients see it: traffic, tokens, latency and errors, from the routers.",
        [query_variable("model", "Model", "label_values(fleetgate_healthy_replicas, model)")],
        [
            [
                stat("Healthy replicas", "Fewest healthy replicas of any selected model, as the routers see them",
                     (f"min(max by (model) (fleetgate_healthy_replicas{{{m}}}))", ""), "none",
                     [(None, "red"), (1, "green")]),
                stat("In flight", "Requests being served now", (f"sum(fleetgate_requests_in_flight{{{m}}})", ""),
                     "none", [(None, "green")]),
                stat("Requests/s", "Finished requests per second",
                     (f"sum(rate(fleetgate_requests_total{{{m}}}{RATE}))", ""), "reqps", [(None, "green")]),
                stat("Completion tokens/s", "Generated tokens per second",
                     (f"sum(rate(fleetgate_completion_tokens_total{{{m}}}{RATE}))", ""), "none", [(None, "green")]),
                stat("Server error ratio", "Server-side errors (api_error, overloaded) / finished requests",
                     (f'sum(rate(fleetgate_errors_total{{{m}, type=~"{SERVER_ERROR_TYPES}"}}{RATE}))'
                      f" / sum(rate(fleetgate_requests_total{{{m}}}{RATE}))", ""),
                     "percentunit", [(None, "green"), (0.01, "orange"), (0.05, "red")]),
            ],
            [
                timeseries("Requests/s by dialect", "Finished requests per second per API dialect",
                           [(rate_sum("fleetgate_requests_total", m, "dialect"), "{{dialect}}")], "reqps"),
                timeseries("Tokens/s", "Prompt, completion and prefix-cached tokens per second per model",
                           [(rate_sum("fleetgate_completion_tokens_total", m, "model"), "completion {{model}}"),
                            (rate_sum("fleetgate_prompt_tokens_total", m, "model"), "prompt {{model}}"),
                            (rate_sum("fleetgate_cached_tokens_total", m, "model"), "cached {{model}}")], "none"),
            ],
            [
                timeseries("Time to first token", "p50 / p95 / p99 from request to the first token sent",
                           quantile_queries("fleetgate_time_to_first_token_seconds", m, "model"), "s"),
                timeseries("Inter-token latency", "p50 / p95 / p99 between consecutive streamed deltas",
                           quantile_queries("fleetgate_inter_token_latency_seconds", m, "model"), "s"),
            ],
            [
                timeseries("End-to-end latency", "p50 / p95 / p99 from request to the last byte",
                           quantile_queries("fleetgate_request_duration_seconds", m, "model"), "s"),
                timeseries("Errors/s by type", "Errors returned to clients, and requests refused by a rate limit",
                           [(rate_sum("fleetgate_errors_total", m, "model, type"), "{{type}} {{model}}"),
                            (rate_sum("fleetgate_rate_limited_total", m, "model"), "rate limited {{model}}")], "reqps"),
            ],
            [
                timeseries("In flight", "Requests being served now, per model and dialect",
                           [(f"sum by (model, dialect) (fleetgate_requests_in_flight{{{m}}})",
                             "{{dialect}} {{model}}")], "none"),
                timeseries("Healthy replicas", "Healthy replicas per model (the most any router sees)",
                           [(f"max by (model) (fleetgate_healthy_replicas{{{m}}})", "{{model}}")], "none", min=0),
            ],
            [
                timeseries("Requests/s by status", "Finished requests per second by outcome",
                           [(rate_sum("fleetgate_requests_total", m, "model, status"), "{{status}} {{model}}")],
                           "reqps"),
                timeseries("Retries and affinity", "Retries before the first token; continuations routed by affinity",
                           [(rate_sum("fleetgate_retries_total", m, "model"), "retries {{model}}"),
                            (rate_sum("fleetgate_affinity_total", m, "model, result"),
                             "affinity {{result}} {{model}}")],
                           "reqps"),
            ],
            [
                timeseries("Routing decisions by reason",
                           "Replica choices per second and why: hit (the replica holding most of the prompt's "
                           "prefix), session (the session's pinned replica), spill (the better replica was "
                           "saturated), cold (no replica holds any of it)",
                           [(rate_sum("fleetgate_routing_decisions_total", m, "model, policy, reason"),
                             "{{reason}} ({{policy}}) {{model}}")], "reqps"),
                timeseries("Prefix-cache hit ratio: actual and predicted",
                           "Share of prompt tokens the engines read from their prefix cache, and the share the "
                           "routers' prefix index predicted for the replicas it chose",
                           [(f"{rate_sum('fleetgate_cached_tokens_total', m, 'model')}"
                             f" / {rate_sum('fleetgate_prompt_tokens_total', m, 'model')}", "actual {{model}}"),
                            (f"{rate_sum(PREDICTED_CACHED, m, 'model')}"
                             f" / {rate_sum(ROUTED_PROMPT, m, 'model')}", "predicted {{model}}")],
                           "percentunit", min=0, max=1),
            ],
        ],
    )


def replicas() -> dict[str, Any]:
    r = 'model=~"$model", replica=~"$replica"'
    v = 'model_name=~"$model", replica=~"$replica"'  # vLLM names the model `model_name`
    by = "replica"
    return dashboard(
        "fleetgate-replicas", "fleetgate / Replicas",
        "Each replica's load, queue, KV cache and throughput; vLLM's own engine metrics below.",
        [query_variable("model", "Model", "label_values(fleetgate_replica_running, model)"),
         query_variable("replica", "Replica", 'label_values(fleetgate_replica_running{model=~"$model"}, replica)')],
        [
            [
                stat("Replicas", "Replicas reporting metrics", (f"count(fleetgate_replica_running{{{r}}})", ""),
                     "none", [(None, "red"), (1, "green")]),
                stat("Running", "Requests running in the engines", (f"sum(fleetgate_replica_running{{{r}}})", ""),
                     "none", [(None, "green")]),
                stat("Waiting", "Requests queued in the engines", (f"sum(fleetgate_replica_waiting{{{r}}})", ""),
                     "none", [(None, "green"), (1, "orange")]),
                stat("Max KV-cache usage", "The fullest KV cache among the selected replicas",
                     (f"max(fleetgate_replica_kv_cache_usage_ratio{{{r}}} >= 0)", ""), "percentunit",
                     [(None, "green"), (0.8, "orange"), (0.9, "red")]),
            ],
            [
                timeseries("Running per replica", "Requests running in each engine (its batch)",
                           [(f"sum by (replica) (fleetgate_replica_running{{{r}}})", "{{replica}}")], "none"),
                timeseries("Queue per replica", "Requests waiting in each engine's queue",
                           [(f"sum by (replica) (fleetgate_replica_waiting{{{r}}})", "{{replica}}")], "none"),
            ],
            [
                timeseries("KV-cache usage", "Share of each replica's KV cache in use (not shown when not reported)",
                           [(f"max by (replica) (fleetgate_replica_kv_cache_usage_ratio{{{r}}} >= 0)", "{{replica}}")],
                           "percentunit", min=0, max=1),
                timeseries("Tokens/s per replica", "Generated and prompt tokens per second",
                           [(rate_sum("fleetgate_replica_generated_tokens_total", r, by), "generated {{replica}}"),
                            (rate_sum("fleetgate_replica_prompt_tokens_total", r, by), "prompt {{replica}}")], "none"),
            ],
            [
                timeseries("Finished requests/s by reason", "Generate calls finished per second, by finish reason",
                           [(rate_sum("fleetgate_replica_requests_total", r, "replica, reason"),
                             "{{reason}} {{replica}}")],
                           "reqps"),
                timeseries("Aborts/s", "Requests aborted (client cancel or Abort)",
                           [(rate_sum("fleetgate_replica_aborts_total", r, by), "{{replica}}")], "reqps"),
            ],
            [
                timeseries("Prefix-cache hit ratio per replica",
                           "Share of the prompt tokens routed to each replica that its engine read from its prefix "
                           "cache (engine-reported, counted by the routers)",
                           [(f"{rate_sum(ROUTED_CACHED, r, by)} / {rate_sum(ROUTED_PROMPT, r, by)}",
                             "{{replica}}")], "percentunit", min=0, max=1),
                timeseries("Cached tokens/s: predicted and actual",
                           "Prompt tokens per second the routers' prefix index expected each chosen replica to hold, "
                           "against the tokens its engine reported reading from its cache",
                           [(rate_sum(PREDICTED_CACHED, r, by), "predicted {{replica}}"),
                            (rate_sum(ROUTED_CACHED, r, by), "actual {{replica}}")], "none"),
            ],
            [
                timeseries("vLLM scheduler", "vLLM's running and waiting requests",
                           [(f"sum by (replica) (vllm:num_requests_running{{{v}}})", "running {{replica}}"),
                            (f"sum by (replica) (vllm:num_requests_waiting{{{v}}})", "waiting {{replica}}")], "none"),
                timeseries("vLLM KV cache and prefix cache", "KV-cache usage and prefix-cache hit ratio",
                           [(f"max by (replica) (vllm:kv_cache_usage_perc{{{v}}})", "KV usage {{replica}}"),
                            (f"{rate_sum('vllm:prefix_cache_hits_total', v, by)}"
                             f" / {rate_sum('vllm:prefix_cache_queries_total', v, by)}",
                             "prefix hits {{replica}}")], "percentunit", min=0, max=1),
            ],
            [
                timeseries("vLLM time to first token", "p50 / p95 / p99 inside the engine",
                           quantile_queries("vllm:time_to_first_token_seconds", v, by), "s"),
                timeseries("vLLM tokens/s and preemptions",
                           "Engine generation tokens per second; preemptions per second",
                           [(rate_sum("vllm:generation_tokens_total", v, by), "generated {{replica}}"),
                            (rate_sum("vllm:num_preemptions_total", v, by), "preemptions {{replica}}")], "none"),
            ],
        ],
    )


DASHBOARDS = {"overview.json": overview, "replicas.json": replicas}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard differs from its build")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = HERE / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale dashboards (run {Path(__file__).name}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
