"""Builds the Grafana dashboards of deploy/grafana/ (overview.json, replicas.json, usage.json).

The JSON files are committed (Grafana and the Helm chart load them as they are); this script is
where they are edited. Panels, queries, variables and the dashboards themselves are made with
Grafana's own typed builders (``grafana-foundation-sdk``, pinned in the ``dev`` extra: the release
for Grafana 11.6, dashboard schema 41), so a misspelt option or a wrong type is a mypy error
(tests/test_observability_dashboards.py runs mypy on this file), and every panel is laid out and
wired to the ``${datasource}`` variable the same way. After a change:

    .venv/bin/python deploy/grafana/build_dashboards.py          # rewrite the JSON files
    .venv/bin/python deploy/grafana/build_dashboards.py --check  # exit 1 if they are stale

Queries use raw metrics with ``$__rate_interval`` / ``$__range`` (not the recording rules), so the
dashboards work on any Prometheus that scrapes fleetgate, with or without its rules.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

try:
    from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, table, timeseries
    from grafana_foundation_sdk.cog.builder import Builder
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.variants import Dataquery
    from grafana_foundation_sdk.models import common as common_model
    from grafana_foundation_sdk.models import dashboard as dashboard_model
    from grafana_foundation_sdk.models import prometheus as prometheus_model
except ImportError:  # pragma: no cover - a hint, not a code path
    sys.exit("grafana-foundation-sdk is not installed: .venv/bin/pip install -e '.[dev]'")

HERE = Path(__file__).resolve().parent
DATASOURCE = dashboard_model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"
RANGE = "[$__range]"
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

# Server-side tools (router/metrics.py): the calls the routers' tool loops ran, by tool and outcome, and their
# seconds, toolbox round trip included. Not per model: the panels filter by the `tool` variable instead.
TOOL_CALLS = "fleetgate_server_tool_calls_total"
TOOL_SECONDS = "fleetgate_server_tool_seconds"

# Usage per API key (router/metrics.py): labelled with the key's opaque id (never its secret), at most
# router.usage.metrics_max_keys ids per router, the rest as key_id="other".
KEY_TOKENS = "fleetgate_key_usage_tokens_total"
KEY_REQUESTS = "fleetgate_key_usage_requests_total"
KEY_WAITING = "fleetgate_admission_waiting_by_key"
# Token kinds: cached_input is the part of input read from the prefix cache and reasoning the part of output
# spent reasoning (as the router's prompt / cached token counters), so a key's tokens are input + output.
TOKEN_KINDS = 'kind=~"input|output"'

Panel = Builder[dashboard_model.Panel]
Query = prometheus.Dataquery
# A dashboard's layout, top to bottom: rows of panels, and a string for a row header (a Grafana row panel).
Layout = list[list[Panel] | str]


# --- building blocks -----------------------------------------------------------------


def query(expr: str, legend: str = "", *, instant: bool = False, as_table: bool = False) -> Query:
    """A PromQL target on the ``${datasource}`` variable: a range query, or an instant one (a value per series
    at the end of the time range), in table format for table panels."""
    target = (prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE)
              .editor_mode(prometheus_model.QueryEditorMode.CODE))
    target = target.instant() if instant else target.range()
    return target.format(prometheus_model.PromQueryFormat.TABLE) if as_table else target


def ref_id(index: int) -> str:
    return chr(ord("A") + index)


def targets(queries: list[Query]) -> list[Builder[Dataquery]]:
    """A panel's queries with their ref ids A, B, ..."""
    return [q.ref_id(ref_id(i)) for i, q in enumerate(queries)]


def thresholds(steps: list[tuple[float | None, str]]) -> dashboard.ThresholdsConfig:
    return dashboard.ThresholdsConfig().mode(dashboard_model.ThresholdsMode.ABSOLUTE).steps(
        [dashboard_model.Threshold(value=value, color=color) for value, color in steps])


def last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def timeseries_panel(
    title: str, description: str, queries: list[Query], unit: str, *,
    min_val: float | None = None, max_val: float | None = None, stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
        .draw_style(common_model.GraphDrawStyle.LINE).line_width(1).fill_opacity(10)
        .show_points(common_model.VisibilityMode.NEVER).span_nulls(True)
        .legend(common.VizLegendOptions().display_mode(common_model.LegendDisplayMode.LIST)
                .placement(common_model.LegendPlacement.BOTTOM).show_legend(True))
        .tooltip(common.VizTooltipOptions().mode(common_model.TooltipDisplayMode.MULTI)
                 .sort(common_model.SortOrder.DESCENDING))
        .targets(targets(queries))
    )
    if min_val is not None:
        panel.min(min_val)
    if max_val is not None:
        panel.max(max_val)
    if stacked:
        panel.stacking(common.StackingConfig().mode(common_model.StackingMode.NORMAL)).fill_opacity(40)
    return panel


def stat_panel(
    title: str, description: str, target: Query, unit: str, steps: list[tuple[float | None, str]]
) -> stat.Panel:
    return (
        stat.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit)
        .thresholds(thresholds(steps)).reduce_options(last_value())
        .color_mode(common_model.BigValueColorMode.VALUE).graph_mode(common_model.BigValueGraphMode.AREA)
        .text_mode(common_model.BigValueTextMode.AUTO).justify_mode(common_model.BigValueJustifyMode.AUTO)
        .orientation(common_model.VizOrientation.AUTO)
        .targets(targets([target]))
    )


def bar_gauge_panel(title: str, description: str, target: Query, unit: str, no_value: str) -> bargauge.Panel:
    """Horizontal bars, one per series of an instant query, in the order the query returns them."""
    return (
        bargauge.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit).min(0)
        .no_value(no_value).thresholds(thresholds([(None, "blue")])).reduce_options(last_value())
        .display_mode(common_model.BarGaugeDisplayMode.GRADIENT).orientation(common_model.VizOrientation.HORIZONTAL)
        .value_mode(common_model.BarGaugeValueMode.TEXT).show_unfilled(True)
        .targets(targets([target]))
    )


def table_panel(
    title: str, description: str, columns: list[tuple[str, str]], by: list[str], unit: str
) -> table.Panel:
    """One row per combination of the ``by`` labels, one column per (header, instant query in table format):
    Grafana's merge joins the queries' frames on the labels, organize drops the time and names the columns."""
    values = {f"Value #{ref_id(i)}": header for i, (header, _) in enumerate(columns)}
    order = {name: i for i, name in enumerate([*by, *values])}
    return (
        table.Panel().title(title).description(description).datasource(DATASOURCE).unit(unit).decimals(0)
        .targets(targets([query(expr, instant=True, as_table=True) for _, expr in columns]))
        .with_transformation(dashboard_model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(dashboard_model.DataTransformerConfig(id_val="organize", options={
            "excludeByName": {"Time": True}, "renameByName": values, "indexByName": order}))
        .sort_by([common.TableSortByFieldState().display_name(columns[0][0]).desc(True)])
        .cell_height(common_model.TableCellHeight.SM)
    )


def quantile_queries(metric: str, selector: str, by: str, quantiles: tuple[float, ...] = QUANTILES) -> list[Query]:
    """p50 / p95 / p99 (or ``quantiles``) of a histogram, per ``by`` label."""
    return [
        query(f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}{RATE})))",
              f"p{round(q * 100)} {{{{{by}}}}}")
        for q in quantiles
    ]


def rate_sum(metric: str, selector: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}{RATE}))"


def increase_sum(metric: str, selector: str, by: str) -> str:
    """The increase of a counter over the dashboard's time range, summed per ``by`` (all of it when empty)."""
    grouping = f"sum by ({by}) " if by else "sum"
    return f"{grouping}(increase({metric}{{{selector}}}{RANGE}))"


def share(part: str, whole: str) -> str:
    """part / whole, where a group with a ``whole`` but no ``part`` series reads 0, not nothing: the router
    creates a key's error or cached_input series only when it first counts one."""
    return f"({part} or 0 * {whole}) / {whole}"


def layout(board: dashboard.Dashboard, rows: Layout) -> None:
    """Add the panels to the board with ids in order and grid positions: each inner list is one row of equal
    widths, as tall as a stat when it holds only stats; a string is an (expanded) row header across the board."""
    y = 0
    panel_id = 0
    for row in rows:
        if isinstance(row, str):
            panel_id += 1
            board.with_row(dashboard.Row(row).id(panel_id).collapsed(False)
                           .grid_pos(dashboard_model.GridPos(h=1, w=FULL_WIDTH, x=0, y=y)))
            y += 1
            continue
        width = FULL_WIDTH // len(row)
        built = [panel.build() for panel in row]
        height = STAT_HEIGHT if all(p.type_val == "stat" for p in built) else GRAPH_HEIGHT
        for i, (panel, model) in enumerate(zip(row, built, strict=True)):
            panel_id += 1
            model.id_val = panel_id
            model.grid_pos = dashboard_model.GridPos(h=height, w=width, x=i * width, y=y)
            board.with_panel(panel)
        y += height


def datasource_variable() -> dashboard.DatasourceVariable:
    return (dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .hide(dashboard_model.VariableHide.DONT_HIDE).multi(False).include_all(False).regex(""))


def query_variable(name: str, label: str, label_values: str) -> dashboard.QueryVariable:
    """A multi-value label variable with an All option (matching every value)."""
    return (
        dashboard.QueryVariable(name).label(label).datasource(DATASOURCE)
        .query({"query": label_values, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1})
        .refresh(dashboard_model.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dashboard_model.VariableSort.ALPHABETICAL_ASC)
        .multi(True).include_all(True).all_value(".*").hide(dashboard_model.VariableHide.DONT_HIDE).regex("")
    )


def fleetgate_dashboard(
    uid: str, title: str, description: str, variables: list[dashboard.QueryVariable], rows: Layout
) -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard(title).uid(uid).description(description).tags(["fleetgate"]).editable()
        .tooltip(dashboard_model.DashboardCursorSync.CROSSHAIR).timezone("browser").refresh("10s")
        .time("now-1h", "now").version(1)
        .annotation(dashboard.AnnotationQuery().built_in(1).name("Annotations & Alerts").type("dashboard")
                    .datasource(dashboard_model.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                    .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)"))
        .link(dashboard.DashboardLink("fleetgate").type(dashboard_model.DashboardLinkType.DASHBOARDS)
              .tags(["fleetgate"]).as_dropdown(False).include_vars(True).keep_time(True))
        .with_variable(datasource_variable())
    )
    for variable in variables:
        board.with_variable(variable)
    layout(board, rows)
    return board


# --- the dashboards ------------------------------------------------------------------


def overview() -> dashboard.Dashboard:
    m = 'model=~"$model"'
    t = 'tool=~"$tool"'
    return fleetgate_dashboard(
        "fleetgate-overview", "fleetgate / Overview",
        "The shared endpoint as clients see it: traffic, tokens, latency and errors, from the routers; "
        "below, the server-side tools the routers ran.",
        [query_variable("model", "Model", "label_values(fleetgate_healthy_replicas, model)"),
         query_variable("tool", "Server-side tool", f"label_values({TOOL_CALLS}, tool)")],
        [
            [
                stat_panel("Healthy replicas", "Fewest healthy replicas of any selected model, as the routers see them",
                           query(f"min(max by (model) (fleetgate_healthy_replicas{{{m}}}))"), "none",
                           [(None, "red"), (1, "green")]),
                stat_panel("In flight", "Requests being served now", query(f"sum(fleetgate_requests_in_flight{{{m}}})"),
                           "none", [(None, "green")]),
                stat_panel("Requests/s", "Finished requests per second",
                           query(f"sum(rate(fleetgate_requests_total{{{m}}}{RATE}))"), "reqps", [(None, "green")]),
                stat_panel("Completion tokens/s", "Generated tokens per second",
                           query(f"sum(rate(fleetgate_completion_tokens_total{{{m}}}{RATE}))"), "none",
                           [(None, "green")]),
                stat_panel("Server error ratio", "Server-side errors (api_error, overloaded) / finished requests",
                           query(f'sum(rate(fleetgate_errors_total{{{m}, type=~"{SERVER_ERROR_TYPES}"}}{RATE}))'
                                 f" / sum(rate(fleetgate_requests_total{{{m}}}{RATE}))"),
                           "percentunit", [(None, "green"), (0.01, "orange"), (0.05, "red")]),
            ],
            [
                timeseries_panel("Requests/s by dialect", "Finished requests per second per API dialect",
                                 [query(rate_sum("fleetgate_requests_total", m, "dialect"), "{{dialect}}")], "reqps"),
                timeseries_panel(
                    "Tokens/s", "Prompt, completion and prefix-cached tokens per second per model",
                    [query(rate_sum("fleetgate_completion_tokens_total", m, "model"), "completion {{model}}"),
                     query(rate_sum("fleetgate_prompt_tokens_total", m, "model"), "prompt {{model}}"),
                     query(rate_sum("fleetgate_cached_tokens_total", m, "model"), "cached {{model}}")], "none"),
            ],
            [
                timeseries_panel("Time to first token", "p50 / p95 / p99 from request to the first token sent",
                                 quantile_queries("fleetgate_time_to_first_token_seconds", m, "model"), "s"),
                timeseries_panel("Inter-token latency", "p50 / p95 / p99 between consecutive streamed deltas",
                                 quantile_queries("fleetgate_inter_token_latency_seconds", m, "model"), "s"),
            ],
            [
                timeseries_panel("End-to-end latency", "p50 / p95 / p99 from request to the last byte",
                                 quantile_queries("fleetgate_request_duration_seconds", m, "model"), "s"),
                timeseries_panel(
                    "Errors/s by type", "Errors returned to clients, and requests refused by a rate limit",
                    [query(rate_sum("fleetgate_errors_total", m, "model, type"), "{{type}} {{model}}"),
                     query(rate_sum("fleetgate_rate_limited_total", m, "model"), "rate limited {{model}}")], "reqps"),
            ],
            [
                timeseries_panel("In flight", "Requests being served now, per model and dialect",
                                 [query(f"sum by (model, dialect) (fleetgate_requests_in_flight{{{m}}})",
                                        "{{dialect}} {{model}}")], "none"),
                timeseries_panel("Healthy replicas", "Healthy replicas per model (the most any router sees)",
                                 [query(f"max by (model) (fleetgate_healthy_replicas{{{m}}})", "{{model}}")], "none",
                                 min_val=0),
            ],
            [
                timeseries_panel("Requests/s by status", "Finished requests per second by outcome",
                                 [query(rate_sum("fleetgate_requests_total", m, "model, status"),
                                        "{{status}} {{model}}")], "reqps"),
                timeseries_panel(
                    "Retries and affinity", "Retries before the first token; continuations routed by affinity",
                    [query(rate_sum("fleetgate_retries_total", m, "model"), "retries {{model}}"),
                     query(rate_sum("fleetgate_affinity_total", m, "model, result"), "affinity {{result}} {{model}}")],
                    "reqps"),
            ],
            [
                timeseries_panel(
                    "Routing decisions by reason",
                    "Replica choices per second and why: hit (the replica holding most of the prompt's "
                    "prefix), session (the session's pinned replica), spill (the better replica was "
                    "saturated), cold (no replica holds any of it)",
                    [query(rate_sum("fleetgate_routing_decisions_total", m, "model, policy, reason"),
                           "{{reason}} ({{policy}}) {{model}}")], "reqps"),
                timeseries_panel(
                    "Prefix-cache hit ratio: actual and predicted",
                    "Share of prompt tokens the engines read from their prefix cache, and the share the "
                    "routers' prefix index predicted for the replicas it chose",
                    [query(f"{rate_sum('fleetgate_cached_tokens_total', m, 'model')}"
                           f" / {rate_sum('fleetgate_prompt_tokens_total', m, 'model')}", "actual {{model}}"),
                     query(f"{rate_sum(PREDICTED_CACHED, m, 'model')}"
                           f" / {rate_sum(ROUTED_PROMPT, m, 'model')}", "predicted {{model}}")],
                    "percentunit", min_val=0, max_val=1),
            ],
            "Server-side tools",
            [
                timeseries_panel(
                    "Tool calls/s by tool and outcome",
                    "Server-side tool calls the routers' tool loops ran per second, by tool (python, bash, "
                    "web_search, mcp) and outcome (ok, error, timeout, output_limit, memory, refused, "
                    "unavailable: no toolbox answered). All models: tool calls are not labelled by model",
                    [query(rate_sum(TOOL_CALLS, t, "tool, outcome"), "{{outcome}} {{tool}}")], "ops", min_val=0),
                timeseries_panel(
                    "Tool latency by tool",
                    "p50 / p95 seconds of one server-side tool call, the toolbox round trip included",
                    quantile_queries(TOOL_SECONDS, t, "tool", (0.5, 0.95)), "s", min_val=0),
            ],
        ],
    )


def replicas() -> dashboard.Dashboard:
    r = 'model=~"$model", replica=~"$replica"'
    v = 'model_name=~"$model", replica=~"$replica"'  # vLLM names the model `model_name`
    by = "replica"
    return fleetgate_dashboard(
        "fleetgate-replicas", "fleetgate / Replicas",
        "Each replica's load, queue, KV cache and throughput; vLLM's own engine metrics below.",
        [query_variable("model", "Model", "label_values(fleetgate_replica_running, model)"),
         query_variable("replica", "Replica", 'label_values(fleetgate_replica_running{model=~"$model"}, replica)')],
        [
            [
                stat_panel("Replicas", "Replicas reporting metrics", query(f"count(fleetgate_replica_running{{{r}}})"),
                           "none", [(None, "red"), (1, "green")]),
                stat_panel("Running", "Requests running in the engines",
                           query(f"sum(fleetgate_replica_running{{{r}}})"), "none", [(None, "green")]),
                stat_panel("Waiting", "Requests queued in the engines", query(f"sum(fleetgate_replica_waiting{{{r}}})"),
                           "none", [(None, "green"), (1, "orange")]),
                stat_panel("Max KV-cache usage", "The fullest KV cache among the selected replicas",
                           query(f"max(fleetgate_replica_kv_cache_usage_ratio{{{r}}} >= 0)"), "percentunit",
                           [(None, "green"), (0.8, "orange"), (0.9, "red")]),
            ],
            [
                timeseries_panel("Running per replica", "Requests running in each engine (its batch)",
                                 [query(f"sum by (replica) (fleetgate_replica_running{{{r}}})", "{{replica}}")],
                                 "none"),
                timeseries_panel("Queue per replica", "Requests waiting in each engine's queue",
                                 [query(f"sum by (replica) (fleetgate_replica_waiting{{{r}}})", "{{replica}}")],
                                 "none"),
            ],
            [
                timeseries_panel(
                    "KV-cache usage", "Share of each replica's KV cache in use (not shown when not reported)",
                    [query(f"max by (replica) (fleetgate_replica_kv_cache_usage_ratio{{{r}}} >= 0)", "{{replica}}")],
                    "percentunit", min_val=0, max_val=1),
                timeseries_panel(
                    "Tokens/s per replica", "Generated and prompt tokens per second",
                    [query(rate_sum("fleetgate_replica_generated_tokens_total", r, by), "generated {{replica}}"),
                     query(rate_sum("fleetgate_replica_prompt_tokens_total", r, by), "prompt {{replica}}")], "none"),
            ],
            [
                timeseries_panel(
                    "Finished requests/s by reason", "Generate calls finished per second, by finish reason",
                    [query(rate_sum("fleetgate_replica_requests_total", r, "replica, reason"),
                           "{{reason}} {{replica}}")], "reqps"),
                timeseries_panel("Aborts/s", "Requests aborted (client cancel or Abort)",
                                 [query(rate_sum("fleetgate_replica_aborts_total", r, by), "{{replica}}")], "reqps"),
            ],
            [
                timeseries_panel(
                    "Prefix-cache hit ratio per replica",
                    "Share of the prompt tokens routed to each replica that its engine read from its prefix "
                    "cache (engine-reported, counted by the routers)",
                    [query(f"{rate_sum(ROUTED_CACHED, r, by)} / {rate_sum(ROUTED_PROMPT, r, by)}", "{{replica}}")],
                    "percentunit", min_val=0, max_val=1),
                timeseries_panel(
                    "Cached tokens/s: predicted and actual",
                    "Prompt tokens per second the routers' prefix index expected each chosen replica to hold, "
                    "against the tokens its engine reported reading from its cache",
                    [query(rate_sum(PREDICTED_CACHED, r, by), "predicted {{replica}}"),
                     query(rate_sum(ROUTED_CACHED, r, by), "actual {{replica}}")], "none"),
            ],
            [
                timeseries_panel(
                    "vLLM scheduler", "vLLM's running and waiting requests",
                    [query(f"sum by (replica) (vllm:num_requests_running{{{v}}})", "running {{replica}}"),
                     query(f"sum by (replica) (vllm:num_requests_waiting{{{v}}})", "waiting {{replica}}")], "none"),
                timeseries_panel(
                    "vLLM KV cache and prefix cache", "KV-cache usage and prefix-cache hit ratio",
                    [query(f"max by (replica) (vllm:kv_cache_usage_perc{{{v}}})", "KV usage {{replica}}"),
                     query(f"{rate_sum('vllm:prefix_cache_hits_total', v, by)}"
                           f" / {rate_sum('vllm:prefix_cache_queries_total', v, by)}", "prefix hits {{replica}}")],
                    "percentunit", min_val=0, max_val=1),
            ],
            [
                timeseries_panel("vLLM time to first token", "p50 / p95 / p99 inside the engine",
                                 quantile_queries("vllm:time_to_first_token_seconds", v, by), "s"),
                timeseries_panel(
                    "vLLM tokens/s and preemptions", "Engine generation tokens per second; preemptions per second",
                    [query(rate_sum("vllm:generation_tokens_total", v, by), "generated {{replica}}"),
                     query(rate_sum("vllm:num_preemptions_total", v, by), "preemptions {{replica}}")], "none"),
            ],
        ],
    )


def usage() -> dashboard.Dashboard:
    k = 'model=~"$model", key_id=~"$key_id"'
    tokens = f"{k}, {TOKEN_KINDS}"
    errors = f'{k}, outcome="error"'

    def kind(name: str) -> str:
        return f'{k}, kind="{name}"'

    return fleetgate_dashboard(
        "fleetgate-usage", "fleetgate / Usage",
        "Who uses the endpoint: tokens and requests per API key and model, and whose requests wait for a slot. "
        "Keys are their ids (key_...), never secrets; each router labels at most router.usage.metrics_max_keys "
        'ids, the rest are key_id="other".',
        [query_variable("model", "Model", f"label_values({KEY_REQUESTS}, model)"),
         query_variable("key_id", "API key", f'label_values({KEY_REQUESTS}{{model=~"$model"}}, key_id)')],
        [
            [
                stat_panel("Tokens/s", "Input + output tokens per second of the selected keys",
                           query(f"sum(rate({KEY_TOKENS}{{{tokens}}}{RATE}))"), "short", [(None, "green")]),
                stat_panel("Tokens in range", "Input + output tokens of the selected keys over the time range",
                           query(increase_sum(KEY_TOKENS, tokens, ""), instant=True), "short", [(None, "green")]),
                stat_panel("Requests in range", "Requests of the selected keys over the time range, any outcome",
                           query(increase_sum(KEY_REQUESTS, k, ""), instant=True), "short", [(None, "green")]),
                stat_panel("Error ratio in range",
                           "Requests that ended in an error / all requests of the selected keys over the time range "
                           "(a client that hung up is not an error)",
                           query(share(increase_sum(KEY_REQUESTS, errors, ""), increase_sum(KEY_REQUESTS, k, "")),
                                 instant=True),
                           "percentunit", [(None, "green"), (0.01, "orange"), (0.05, "red")]),
                stat_panel("Waiting now", "Requests of the selected keys waiting in the routers' admission queues",
                           query(f"sum({KEY_WAITING}{{{k}}})"), "none", [(None, "green"), (1, "orange")]),
            ],
            [
                timeseries_panel("Tokens/s per key", "Input + output tokens per second per API key, stacked",
                                 [query(rate_sum(KEY_TOKENS, tokens, "key_id"), "{{key_id}}")], "short",
                                 min_val=0, stacked=True),
                bar_gauge_panel("Top keys by tokens in range",
                                "The ten keys with the most input + output tokens over the time range",
                                query(f"sort_desc(topk(10, {increase_sum(KEY_TOKENS, tokens, 'key_id')}))",
                                      "{{key_id}}", instant=True),
                                "short", "No usage in range"),
            ],
            [
                table_panel(
                    "Usage in range by key and model",
                    "What each key used of each model over the time range (cached input is part of input, "
                    "reasoning part of output)",
                    [("Input tokens", increase_sum(KEY_TOKENS, kind("input"), "key_id, model")),
                     ("Cached input tokens", increase_sum(KEY_TOKENS, kind("cached_input"), "key_id, model")),
                     ("Output tokens", increase_sum(KEY_TOKENS, kind("output"), "key_id, model")),
                     ("Reasoning tokens", increase_sum(KEY_TOKENS, kind("reasoning"), "key_id, model")),
                     ("Requests", increase_sum(KEY_REQUESTS, k, "key_id, model")),
                     ("Errors", increase_sum(KEY_REQUESTS, errors, "key_id, model"))],
                    ["key_id", "model"], "short"),
            ],
            [
                timeseries_panel("Tokens/s per model", "Input and output tokens per second per model, stacked",
                                 [query(rate_sum(KEY_TOKENS, tokens, "model, kind"), "{{kind}} {{model}}")], "short",
                                 min_val=0, stacked=True),
                timeseries_panel(
                    "Cached share of input per key",
                    "Share of each key's input tokens the engines read from their prefix cache",
                    [query(share(rate_sum(KEY_TOKENS, kind("cached_input"), "key_id"),
                                 rate_sum(KEY_TOKENS, kind("input"), "key_id")), "{{key_id}}")],
                    "percentunit", min_val=0, max_val=1),
            ],
            [
                timeseries_panel("Requests/s per key by outcome",
                                 "Finished requests per second per key: ok, error, client_closed (the client hung up)",
                                 [query(rate_sum(KEY_REQUESTS, k, "key_id, outcome"), "{{outcome}} {{key_id}}")],
                                 "reqps"),
                timeseries_panel("Error ratio per key", "Requests that ended in an error / all requests, per key",
                                 [query(share(rate_sum(KEY_REQUESTS, errors, "key_id"),
                                              rate_sum(KEY_REQUESTS, k, "key_id")), "{{key_id}}")],
                                 "percentunit", min_val=0, max_val=1),
            ],
            [
                timeseries_panel("Waiting by key", "Requests of each key waiting in the routers' admission queues",
                                 [query(f"sum by (key_id, model) ({KEY_WAITING}{{{k}}})", "{{key_id}} {{model}}")],
                                 "none", min_val=0),
                bar_gauge_panel("Who is waiting now", "Keys with requests waiting for a slot now, most first",
                                query(f"sort_desc(sum by (key_id) ({KEY_WAITING}{{{k}}}) > 0)", "{{key_id}}",
                                      instant=True),
                                "none", "Nobody is waiting"),
            ],
        ],
    )


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "overview.json": overview, "replicas.json": replicas, "usage.json": usage,
}


def render(build: Callable[[], dashboard.Dashboard]) -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2) + "\n"


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
