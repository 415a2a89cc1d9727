"""fleetgate/launcher/local_prometheus.py: registry → file-SD targets, runtime config, and a real Prometheus
that discovers replicas as they come and go in a real Redis registry."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
import yaml

from fleetgate.core.config import FleetgateConfig
from fleetgate.core.registered import publish
from fleetgate.core.registry import ReplicaRecord
from fleetgate.launcher.local_prometheus import (
    BASE_CONFIG,
    REPLICAS_SD,
    ROUTERS_SD,
    replica_target_groups,
    router_addresses,
    router_target_groups,
    runtime_prometheus_config,
    start_prometheus,
    write_json_if_changed,
)


def record(replica_id: str, metrics_url: str | None, model: str = "sim") -> ReplicaRecord:
    return ReplicaRecord(replica_id=replica_id, model=model, engine="sim", address="127.0.0.1:50100",
                         metrics_url=metrics_url)


def test_replica_target_groups_label_each_replica_and_skip_those_without_metrics() -> None:
    groups = replica_target_groups([
        record("sim-1", "https://10.0.0.2:9443/custom/metrics"),
        record("no-metrics", None),
        record("sim-0", "http://127.0.0.1:9100/metrics"),
    ])
    assert groups == [
        {
            "targets": ["127.0.0.1:9100"],
            "labels": {
                "__scheme__": "http",
                "__metrics_path__": "/metrics",
                "replica": "sim-0",
                "model": "sim",
                "engine": "sim",
            },
        },
        {
            "targets": ["10.0.0.2:9443"],
            "labels": {
                "__scheme__": "https",
                "__metrics_path__": "/custom/metrics",
                "replica": "sim-1",
                "model": "sim",
                "engine": "sim",
            },
        },
    ]
    assert replica_target_groups([]) == []


def test_router_addresses_scrape_loopback_for_a_wildcard_host_and_drop_duplicates() -> None:
    config = FleetgateConfig.model_validate({"router": {"host": "0.0.0.0", "port": 8081}})
    assert router_addresses(config, ["127.0.0.1:8081", "127.0.0.1:8082"]) == ["127.0.0.1:8081", "127.0.0.1:8082"]
    assert router_target_groups(["127.0.0.1:8081"]) == [{"targets": ["127.0.0.1:8081"], "labels": {}}]
    assert router_target_groups([]) == []


def test_runtime_config_resolves_rules_and_sd_files_and_keeps_the_base_untouched(tmp_path: Path) -> None:
    base = {"global": {"scrape_interval": "5s"}, "rule_files": ["rules/a.yml"],
            "scrape_configs": [{"job_name": "j", "file_sd_configs": [{"files": ["sd/x.json"]}]}]}
    runtime = runtime_prometheus_config(base, base_dir=Path("/etc/p"), sd_root=tmp_path, scrape_interval="1s")
    assert runtime["rule_files"] == ["/etc/p/rules/a.yml"]
    assert runtime["scrape_configs"][0]["file_sd_configs"][0]["files"] == [str(tmp_path / "sd" / "x.json")]
    assert runtime["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    assert base["rule_files"] == ["rules/a.yml"] and base["global"] == {"scrape_interval": "5s"}


def test_sd_files_are_rewritten_only_when_their_content_changes(tmp_path: Path) -> None:
    path = tmp_path / "sd" / "replicas.json"
    assert write_json_if_changed(path, [{"targets": ["a:1"], "labels": {}}])
    assert not write_json_if_changed(path, [{"targets": ["a:1"], "labels": {}}])
    assert write_json_if_changed(path, [])
    assert json.loads(path.read_text()) == []
    assert not list(tmp_path.glob("sd/*.tmp"))


def test_base_config_scrapes_routers_and_replicas_by_file_sd() -> None:
    base = yaml.safe_load(BASE_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in base["scrape_configs"]}
    assert jobs["fleetgate-router"]["file_sd_configs"][0]["files"] == [str(ROUTERS_SD)]
    assert jobs["fleetgate-replica"]["file_sd_configs"][0]["files"] == [str(REPLICAS_SD)]
    assert jobs["fleetgate-replica"]["honor_labels"] is True


def active_targets(url: str) -> dict[str, dict[str, str]]:
    """scrape URL → target labels, for the targets Prometheus scrapes now."""
    body = httpx.get(f"{url}/api/v1/targets", params={"state": "active"}, timeout=5).json()
    return {t["scrapeUrl"]: t["labels"] for t in body["data"]["activeTargets"]}


def wait_for_targets(url: str, predicate, timeout: float = 60.0) -> dict[str, dict[str, str]]:
    deadline = time.monotonic() + timeout
    targets = active_targets(url)
    while not predicate(targets):
        if time.monotonic() > deadline:
            raise AssertionError(f"targets never matched: {targets}")
        time.sleep(0.5)
        targets = active_targets(url)
    return targets


async def test_prometheus_discovers_router_and_registry_replicas_as_they_come_and_go(
    redis_url: str, tmp_path: Path
) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/7"  # a database of its own: only this test's replicas
    config = FleetgateConfig.model_validate({"redis": {"url": url}, "router": {"port": 18080}})
    redis = aioredis.Redis.from_url(url)
    await redis.flushdb()
    await publish(redis, record("sim-0", "http://127.0.0.1:19100/metrics"), ttl_seconds=120)

    prometheus = start_prometheus(config, work_dir=tmp_path, port=0, scrape_interval="1s",
                                  extra_router_targets=["127.0.0.1:18081"])
    try:
        assert httpx.get(f"{prometheus.url}/-/ready", timeout=5).status_code == 200
        targets = wait_for_targets(prometheus.url, lambda t: len(t) == 3)
        assert targets["http://127.0.0.1:19100/metrics"] == {
            "instance": "127.0.0.1:19100",
            "job": "fleetgate-replica",
            "replica": "sim-0",
            "model": "sim",
            "engine": "sim",
        }
        assert targets["http://127.0.0.1:18080/metrics"]["job"] == "fleetgate-router"
        assert targets["http://127.0.0.1:18081/metrics"]["job"] == "fleetgate-router"

        await publish(redis, record("sim-1", "http://127.0.0.1:19101/metrics"), ttl_seconds=120)
        wait_for_targets(prometheus.url, lambda t: "http://127.0.0.1:19101/metrics" in t)

        await redis.delete(record("sim-0", "").key)
        targets = wait_for_targets(prometheus.url, lambda t: "http://127.0.0.1:19100/metrics" not in t)
        assert "http://127.0.0.1:19101/metrics" in targets

        rules = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in rules} == {"fleetgate-throughput", "fleetgate-latency", "fleetgate-errors",
                                              "fleetgate-alerts"}
    finally:
        prometheus.stop()
        await redis.flushdb()
        await redis.aclose()
    assert prometheus.process.poll() is not None
    assert not prometheus.storage_dir.exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{prometheus.url}/-/ready", timeout=2)
