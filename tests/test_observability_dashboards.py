"""The Grafana dashboards are valid Grafana JSON (dashboard schema 41, built with grafana-foundation-sdk's typed
builders, which mypy checks), wired to a Prometheus datasource variable, filterable by model, laid out without
overlaps, and up to date with their builder; the usage dashboard shows API keys by id only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetgate.router import metrics

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_three_dashboards_exist_with_unique_uids() -> None:
    assert [p.name for p in DASHBOARDS] == ["overview.json", "replicas.json", "usage.json"]
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_committed_json_is_what_the_builder_produces() -> None:
    result = subprocess.run([sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_builder_passes_strict_mypy_against_the_sdks_types() -> None:
    """What the typed builders buy: a panel option of the wrong type or name fails here, not in Grafana."""
    result = subprocess.run([sys.executable, "-m", "mypy", str(GRAFANA / "build_dashboards.py")],
                            capture_output=True, text=True, timeout=300, cwd=GRAFANA.parent.parent)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_grafana_10_json_with_datasource_and_model_variables(path: Path) -> None:
    board = load(path)
    assert board["schemaVersion"] >= 38
    assert board["title"] and board["uid"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    model = variables["model"]
    assert model["type"] == "query" and model["datasource"] == DATASOURCE
    assert model["query"]["query"].startswith("label_values(")
    assert model["includeAll"] and model["allValue"] == ".*"


# The router's series without a model label (router/metrics.py): their panels filter by the `tool` variable.
TOOL_METRICS = ("fleetgate_server_tool_calls_total", "fleetgate_server_tool_seconds_bucket")


def queried_panels(path: Path) -> list[dict[str, Any]]:
    """The panels that query (all but row headers)."""
    return [p for p in load(path)["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_queries_the_datasource_variable_and_filters_by_model(path: Path) -> None:
    panels = load(path)["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in queried_panels(path):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            expr = target["expr"]
            if any(name in expr for name in TOOL_METRICS):
                assert '=~"$tool"' in expr and "model" not in expr, f"{panel['title']}: {expr}"
            else:
                assert '=~"$model"' in expr, f"{panel['title']}: {expr}"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_fit_the_24_column_grid_without_overlapping(path: Path) -> None:
    occupied: set[tuple[int, int]] = set()
    for panel in load(path)["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


def titles(name: str) -> set[str]:
    return {p["title"] for p in load(GRAFANA / name)["panels"]}


def test_overview_has_a_server_side_tools_row_of_calls_and_latency_by_tool() -> None:
    board = load(GRAFANA / "overview.json")
    panels = board["panels"]
    (row_index,) = [i for i, p in enumerate(panels) if p["type"] == "row"]
    row = panels[row_index]
    assert (row["title"], row["collapsed"], row["gridPos"]["w"]) == ("Server-side tools", False, 24)
    # The row's panels follow it, right below it, and only they use the tool metrics.
    below = [p for p in panels if p["gridPos"]["y"] == row["gridPos"]["y"] + 1]
    assert [p["title"] for p in below] == ["Tool calls/s by tool and outcome", "Tool latency by tool"]
    assert panels[row_index + 1:] == below
    calls, latency = below
    (target,) = calls["targets"]
    assert target["expr"].startswith(f"sum by (tool, outcome) (rate({TOOL_METRICS[0]}{{")
    assert target["legendFormat"] == "{{outcome}} {{tool}}"
    assert [t["expr"].split(",")[0] for t in latency["targets"]] == [
        "histogram_quantile(0.5", "histogram_quantile(0.95"]
    assert all(f"sum by (tool, le) (rate({TOOL_METRICS[1]}{{" in t["expr"] for t in latency["targets"])
    assert latency["fieldConfig"]["defaults"]["unit"] == "s"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["tool"]["query"]["query"] == f"label_values({TOOL_METRICS[0]}, tool)"
    assert variables["tool"]["includeAll"] and variables["tool"]["allValue"] == ".*"
    # The series are exactly these, with the labels the panels use.
    assert {m._name: (m._type, m._labelnames) for m in (metrics.SERVER_TOOL_CALLS, metrics.SERVER_TOOL_SECONDS)} == {
        "fleetgate_server_tool_calls": ("counter", ("tool", "outcome")),
        "fleetgate_server_tool_seconds": ("histogram", ("tool",)),
    }


def test_overview_shows_traffic_tokens_latency_errors_and_capacity() -> None:
    assert {"Requests/s by dialect", "Tokens/s", "Time to first token", "Inter-token latency",
            "End-to-end latency", "Errors/s by type", "In flight", "Healthy replicas"} <= titles("overview.json")
    ttft = next(p for p in load(GRAFANA / "overview.json")["panels"] if p["title"] == "Time to first token")
    assert [t["expr"].split(",")[0] for t in ttft["targets"]] == [
        "histogram_quantile(0.5", "histogram_quantile(0.95", "histogram_quantile(0.99"]


def test_replicas_shows_load_queue_kv_cache_and_tokens_per_replica() -> None:
    assert {"Running per replica", "Queue per replica", "KV-cache usage", "Tokens/s per replica"} <= titles(
        "replicas.json"
    )


def panel(name: str, title: str) -> dict:
    return next(p for p in load(GRAFANA / name)["panels"] if p["title"] == title)


def test_routing_panels_show_decisions_by_reason_hit_ratio_and_predicted_against_actual() -> None:
    decisions = panel("overview.json", "Routing decisions by reason")
    assert [t["legendFormat"] for t in decisions["targets"]] == ["{{reason}} ({{policy}}) {{model}}"]
    assert "fleetgate_routing_decisions_total" in decisions["targets"][0]["expr"]
    overview_ratio = panel("overview.json", "Prefix-cache hit ratio: actual and predicted")
    actual, predicted = (t["expr"] for t in overview_ratio["targets"])
    assert "fleetgate_cached_tokens_total" in actual and "fleetgate_prompt_tokens_total" in actual
    assert predicted.startswith("sum by (model) (rate(fleetgate_prefix_predicted_cached_tokens_total")

    hit_ratio = panel("replicas.json", "Prefix-cache hit ratio per replica")
    numerator, denominator = hit_ratio["targets"][0]["expr"].split(" / ")
    assert "fleetgate_router_replica_cached_tokens_total" in numerator
    assert "fleetgate_router_replica_prompt_tokens_total" in denominator
    assert hit_ratio["fieldConfig"]["defaults"]["unit"] == "percentunit"
    versus = panel("replicas.json", "Cached tokens/s: predicted and actual")
    assert [t["legendFormat"] for t in versus["targets"]] == ["predicted {{replica}}", "actual {{replica}}"]
    assert "fleetgate_prefix_predicted_cached_tokens_total" in versus["targets"][0]["expr"]
    assert "fleetgate_router_replica_cached_tokens_total" in versus["targets"][1]["expr"]


# --- the usage dashboard -----------------------------------------------------------------

USAGE_METRICS = {"fleetgate_key_usage_tokens_total", "fleetgate_key_usage_requests_total",
                 "fleetgate_admission_waiting_by_key"}
# What a usage panel may show about a request: the key's id and the metrics' other labels, nothing of the key's
# record (name, owner, secret).
USAGE_LABELS = {"key_id", "model", "kind", "outcome"}
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^()]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def usage_targets() -> list[tuple[str, dict]]:
    return [(p["title"], t) for p in load(GRAFANA / "usage.json")["panels"] for t in p["targets"]]


def test_usage_has_a_multi_value_key_id_variable_that_every_query_filters_by() -> None:
    board = load(GRAFANA / "usage.json")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["datasource", "model", "key_id"]
    key_id = variables["key_id"]
    assert key_id["type"] == "query" and key_id["datasource"] == DATASOURCE
    assert key_id["multi"] and key_id["includeAll"] and key_id["allValue"] == ".*"
    assert re.fullmatch(r'label_values\(fleetgate_key_usage_requests_total\{model=~"\$model"\}, key_id\)',
                        key_id["query"]["query"])
    for title, target in usage_targets():
        assert 'key_id=~"$key_id"' in target["expr"], f"{title}: {target['expr']}"


def test_usage_panels_show_key_ids_and_the_usage_labels_only() -> None:
    for title, target in usage_targets():
        expr = target["expr"]
        assert any(name in expr for name in USAGE_METRICS), f"{title}: {expr}"
        grouped = {label.strip() for labels in GROUPING.findall(expr) for label in labels.split(",")}
        assert grouped <= USAGE_LABELS, f"{title}: grouped by {grouped - USAGE_LABELS}"
        assert set(LEGEND_LABEL.findall(target["legendFormat"])) <= USAGE_LABELS, title
    # ... and the series carry nothing else: the router labels them with the key's id, never its secret or name.
    assert {m._name: m._labelnames for m in (metrics.KEY_USAGE_TOKENS, metrics.KEY_USAGE_REQUESTS,
                                              metrics.ADMISSION_WAITING_BY_KEY)} == {
        "fleetgate_key_usage_tokens": ("key_id", "model", "kind"),
        "fleetgate_key_usage_requests": ("key_id", "model", "outcome"),
        "fleetgate_admission_waiting_by_key": ("model", "key_id"),
    }


def test_usage_shows_tokens_per_key_top_keys_per_model_cache_share_errors_and_who_waits() -> None:
    panels = {p["title"]: p for p in load(GRAFANA / "usage.json")["panels"]}
    assert {"Tokens/s per key", "Top keys by tokens in range", "Usage in range by key and model", "Tokens/s per model",
            "Cached share of input per key", "Requests/s per key by outcome", "Error ratio per key",
            "Who is waiting now"} <= set(panels)
    per_key = panels["Tokens/s per key"]
    assert per_key["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert [t["legendFormat"] for t in per_key["targets"]] == ["{{key_id}}"]
    assert "$__rate_interval" in per_key["targets"][0]["expr"]
    # A key's tokens are its input and output: cached input and reasoning are parts of them, not added again.
    assert 'kind=~"input|output"' in per_key["targets"][0]["expr"]

    top = panels["Top keys by tokens in range"]
    assert top["type"] == "bargauge"
    (target,) = top["targets"]
    assert target["instant"] and "[$__range]" in target["expr"] and target["expr"].startswith("sort_desc(topk(10, ")

    usage_table = panels["Usage in range by key and model"]
    assert usage_table["type"] == "table"
    assert all(t["instant"] and t["format"] == "table" and "[$__range]" in t["expr"] for t in usage_table["targets"])
    organize = next(t for t in usage_table["transformations"] if t["id"] == "organize")["options"]
    assert list(organize["renameByName"].values()) == [
        "Input tokens", "Cached input tokens", "Output tokens", "Reasoning tokens", "Requests", "Errors"]
    assert organize["excludeByName"] == {"Time": True}

    assert panels["Cached share of input per key"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert panels["Error ratio per key"]["fieldConfig"]["defaults"]["unit"] == "percentunit"
    waiting = panels["Who is waiting now"]
    assert "fleetgate_admission_waiting_by_key" in waiting["targets"][0]["expr"] and waiting["targets"][0]["instant"]
