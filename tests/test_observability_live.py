"""Metrics move with real traffic, and a real Prometheus scraping a local cluster computes the rules.

A sim replica runs as a real ``fleetgate replica`` process registered in a real Redis;
Prometheus (started by ``fleetgate.local_prometheus``) finds it through the registry.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetgate.config import FleetgateConfig
from fleetgate.local_prometheus import LocalPrometheus, start_prometheus
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc

WAIT_SECONDS = 60.0


def scrape(metrics_url: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) → value, from one scrape of a /metrics endpoint."""
    text = httpx.get(metrics_url, timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample_sum(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items() if sample == name and wanted <= sample_labels)


def query(prometheus: LocalPrometheus, promql: str) -> list[dict]:
    body = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for_query(prometheus: LocalPrometheus, promql: str, accept: Callable[[list[dict]], bool]) -> list[dict]:
    deadline = time.monotonic() + WAIT_SECONDS
    result = query(prometheus, promql)
    while not accept(result):
        if time.monotonic() > deadline:
            raise AssertionError(f"{promql} never gave an accepted result; last: {result}")
        time.sleep(0.5)
        result = query(prometheus, promql)
    return result


def value(result: list[dict]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


@pytest.fixture()
def prometheus(redis_url: str, tmp_path: Path) -> Iterator[LocalPrometheus]:
    config = FleetgateConfig.model_validate({"redis": {"url": redis_url}})
    handle = start_prometheus(config, work_dir=tmp_path / "prometheus", port=0, scrape_interval="1s")
    yield handle
    handle.stop()


async def generate(address: str, model: str) -> pb.Usage:
    """One Generate call over gRPC; the usage event it reported."""
    request = pb.GenerateRequest(
        request_id=uuid.uuid4().hex, model=model,
        messages=[pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text="Say something, please.")])],
    )
    async with grpc.aio.insecure_channel(address) as channel:
        events = [event async for event in replica_pb2_grpc.ReplicaStub(channel).Generate(request)]
    assert events[-1].finish.reason == pb.Finish.REASON_STOP
    (usage,) = [event.usage for event in events if event.WhichOneof("event") == "usage"]
    return usage


async def test_replica_metrics_follow_usage_and_prometheus_records_tokens_per_second(
    replica_factory, prometheus: LocalPrometheus
) -> None:
    replica = replica_factory("sim")
    rid = replica.replica_id
    metrics_url = replica.record.metrics_url
    assert metrics_url

    # Prometheus found the replica in the registry and scrapes it, labelled by replica and model.
    (series,) = wait_for_query(prometheus, f'fleetgate_replica_generated_tokens_total{{replica="{rid}"}}', bool)
    assert series["metric"] | {"instance": ""} == {
        "__name__": "fleetgate_replica_generated_tokens_total", "job": "fleetgate-replica", "instance": "",
        "replica": rid, "model": "sim", "engine": "sim"}
    assert float(series["value"][1]) == 0

    usages = [await generate(replica.address, "sim") for _ in range(5)]
    prompt_tokens = sum(u.prompt_tokens for u in usages)
    completion_tokens = sum(u.completion_tokens for u in usages)
    assert completion_tokens == 5 * 8  # tests/configs/sim.yaml: 8 output tokens

    # The replica's own counters add up to the usage its clients were told.
    samples = scrape(metrics_url)
    labels = {"model": "sim", "replica": rid}
    assert sample_sum(samples, "fleetgate_replica_generated_tokens_total", **labels) == completion_tokens
    assert sample_sum(samples, "fleetgate_replica_prompt_tokens_total", **labels) == prompt_tokens
    assert sample_sum(samples, "fleetgate_replica_requests_total", **labels, reason="stop") == 5
    assert sample_sum(samples, "fleetgate_replica_in_flight", **labels) == 0

    # Prometheus sees the same totals, and the per-replica tokens/sec recording rule has a value.
    wait_for_query(prometheus, f'fleetgate_replica_generated_tokens_total{{replica="{rid}"}}',
                   lambda r: bool(r) and value(r) == completion_tokens)
    rate = wait_for_query(prometheus, f'model_replica:fleetgate_replica_generated_tokens:rate1m{{replica="{rid}"}}',
                          lambda r: bool(r) and value(r) > 0)
    assert rate[0]["metric"] == {"__name__": "model_replica:fleetgate_replica_generated_tokens:rate1m",
                                 "model": "sim", "replica": rid}
