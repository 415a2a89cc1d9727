"""The Grafana dashboards are valid Grafana 10+ JSON, wired to a Prometheus datasource variable,
filterable by model, laid out without overlaps, and up to date with their builder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GRAFANA = Path(__file__).resolve().parent.parent / "deploy" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_two_dashboards_exist_with_unique_uids() -> None:
    assert [p.name for p in DASHBOARDS] == ["overview.json", "replicas.json"]
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


def test_committed_json_is_what_the_builder_produces() -> None:
    result = subprocess.run([sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


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


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_queries_the_datasource_variable_and_filters_by_model(path: Path) -> None:
    panels = load(path)["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert '=~"$model"' in target["expr"], f"{panel['title']}: {target['expr']}"
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
