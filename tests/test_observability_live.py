"""Metrics move with real traffic, and a real Prometheus scraping a local cluster computes the rules.

Sim replicas run as real ``fleetgate replica`` processes registered in a real Redis, a
real router serves the official OpenAI and Anthropic SDKs, and Prometheus (started by
``fleetgate.launcher.local_prometheus``) finds the replicas through the registry.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anthropic
import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleetgate.core.config import FleetgateConfig
from fleetgate.launcher.local_prometheus import LocalPrometheus, start_prometheus
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc
from router_process import ROUTER_CONFIG, RouterProcess, router_factory  # noqa: F401

WAIT_SECONDS = 60.0


def scrape(metrics_url: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) → value, from one scrape of a /metrics endpoint."""
    text = httpx.get(metrics_url, timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample_sum(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(
        value for (sample, sample_labels), value in samples.items() if sample == name and wanted <= sample_labels
    )


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
def prometheus_factory(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., LocalPrometheus]]:
    """``start(router_port=None)``: a Prometheus on the session's registry (and that router), stopped afterwards."""
    started: list[LocalPrometheus] = []

    def start(router_port: int = 8080) -> LocalPrometheus:
        config = FleetgateConfig.model_validate({"redis": {"url": redis_url}, "router": {"port": router_port}})
        handle = start_prometheus(
            config, work_dir=tmp_path / f"prometheus-{len(started)}", port=0, scrape_interval="1s"
        )
        started.append(handle)
        return handle

    yield start
    for handle in started:
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
    replica_factory, prometheus_factory
) -> None:
    prometheus = prometheus_factory()
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


# --- through the router -----------------------------------------------------------------

MODEL = "rt-sim"  # tests/configs/router-sim.yaml: 8 lorem words
PROMPT = "Say hello"


def chat(router: RouterProcess, stream: bool) -> tuple[int, int]:
    client = router.openai()
    messages = [{"role": "user", "content": PROMPT}]
    if not stream:
        usage = client.chat.completions.create(model=MODEL, messages=messages).usage
    else:
        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True,
                                                     stream_options={"include_usage": True}))
        usage = chunks[-1].usage
    return usage.prompt_tokens, usage.completion_tokens


def messages(router: RouterProcess, stream: bool) -> tuple[int, int]:
    client = anthropic.Anthropic(base_url=router.base_url, api_key="unused", max_retries=0, timeout=60.0)
    params = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": PROMPT}]}
    if not stream:
        usage = client.messages.create(**params).usage
    else:
        with client.messages.stream(**params) as events:
            usage = events.get_final_message().usage
    return usage.input_tokens, usage.output_tokens


def responses(router: RouterProcess, stream: bool) -> tuple[int, int]:
    client = router.openai()
    if not stream:
        usage = client.responses.create(model=MODEL, input=PROMPT).usage
    else:
        with client.responses.stream(model=MODEL, input=PROMPT) as events:
            usage = events.get_final_response().usage
    return usage.input_tokens, usage.output_tokens


CALLS = {"chat": chat, "messages": messages, "responses": responses}


def wait_for_healthy(router: RouterProcess, model: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while router.metric("fleetgate_healthy_replicas", model=model) < 1:
        assert time.monotonic() < deadline, f"router never saw a healthy {model} replica"
        time.sleep(0.1)


def test_router_metrics_follow_client_usage_and_prometheus_records_tokens_per_second(
    replica_factory, router_factory, prometheus_factory
) -> None:
    replica_factory(MODEL, config=ROUTER_CONFIG)
    router = router_factory()
    wait_for_healthy(router, MODEL)
    prometheus = prometheus_factory(router_port=router.port)
    instance = f"127.0.0.1:{router.port}"
    wait_for_query(prometheus, f'fleetgate_healthy_replicas{{model="{MODEL}", instance="{instance}"}}',
                   lambda r: bool(r) and value(r) >= 1)

    # Two rounds of every dialect, streaming and not; the first round creates the counters,
    # so that Prometheus has seen them before the second round makes them move.
    seen: dict[tuple[str, bool], list[tuple[int, int]]] = {(d, s): [] for d in CALLS for s in (False, True)}
    for round_number in range(2):
        for (dialect, stream), usages in seen.items():
            usages.append(CALLS[dialect](router, stream))
        if round_number == 0:
            wait_for_query(
                prometheus, f'fleetgate_completion_tokens_total{{model="{MODEL}", dialect="responses"}}', bool
            )

    for dialect in CALLS:
        for stream in (False, True):
            requests = router.metric("fleetgate_requests_total", model=MODEL, dialect=dialect,
                                     stream=str(stream).lower(), status="200")
            assert requests == 2, (dialect, stream)
        usages = seen[(dialect, False)] + seen[(dialect, True)]
        assert all(completion == 8 for _, completion in usages), usages
        labels = {"model": MODEL, "dialect": dialect}
        assert router.metric("fleetgate_prompt_tokens_total", **labels) == sum(p for p, _ in usages)
        assert router.metric("fleetgate_completion_tokens_total", **labels) == sum(c for _, c in usages)
        # One time-to-first-token observation per streamed request, none for the others.
        assert router.metric("fleetgate_time_to_first_token_seconds_count", **labels) == 2
        assert router.metric("fleetgate_inter_token_latency_seconds_count", **labels) > 0
        assert router.metric("fleetgate_request_duration_seconds_count", **labels, stream="false") == 2
        assert router.metric("fleetgate_request_duration_seconds_count", **labels, stream="true") == 2
        assert router.metric("fleetgate_requests_in_flight", **labels) == 0
        assert router.metric("fleetgate_errors_total", **labels) == 0

    # Prometheus scraped the same totals, and the recording rules have values for the model.
    total = sum(c for usages in seen.values() for _, c in usages)
    wait_for_query(prometheus, f'sum(fleetgate_completion_tokens_total{{model="{MODEL}", instance="{instance}"}})',
                   lambda r: bool(r) and value(r) == total)
    tokens_per_second = wait_for_query(prometheus, f'model:fleetgate_completion_tokens:rate1m{{model="{MODEL}"}}',
                                       lambda r: bool(r) and value(r) > 0)
    assert tokens_per_second[0]["metric"] == {"__name__": "model:fleetgate_completion_tokens:rate1m", "model": MODEL}
    ttft = wait_for_query(prometheus, f'model:fleetgate_time_to_first_token_seconds:quantile_rate1m{{model="{MODEL}"}}',
                          lambda r: len(r) == 3)
    assert sorted(series["metric"]["quantile"] for series in ttft) == ["0.5", "0.95", "0.99"]
    assert all(float(series["value"][1]) > 0 for series in ttft)
