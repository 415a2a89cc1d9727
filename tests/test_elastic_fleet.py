"""The elastic fleet on a sim cluster: a ReplicaController on a local Ray (one per module), a real router process,
the session's real Redis, real gRPC. Models start with no replica: the first request loads one just in time
(keepalives while it waits), load above target adds replicas, idle past the TTL (a request's `ttl`) unloads,
an unload waits for the requests in flight, a load that cannot happen is a 503 in the dialect's shape."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import ray
import yaml

from fleetgate.core.config import FleetgateConfig
from fleetgate.core.registry import REPLICA_KEY_PREFIX, ReplicaRecord
from fleetgate.replicas.controller import ReplicaController
from fleetgate.router.dialects.chat.dialect import CHAT
from fleetgate.router.dialects.completions.dialect import COMPLETIONS
from fleetgate.router.dialects.messages.dialect import MESSAGES
from fleetgate.router.dialects.responses.dialect import RESPONSES
from fleetgate.router.errors import ApiError
from router_process import RouterProcess

MODEL = "el-sim"
UNPLACEABLE = "el-gpu"  # wants a GPU the local Ray does not have: its load never comes
BROKEN = "el-broken"  # a vLLM model whose weights do not exist: its replicas fail to start
# Evictable models of one replica each: three fill the local Ray's 3 CPUs, the fourth must evict one.
EVICTABLE = ("el-a", "el-c", "el-d", "el-b")
ADMIN_SECRET = f"sk-fg-elastic-admin-{uuid.uuid4().hex}"


def cluster_config(redis_url: str) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "replica": {"base_port": 0, "metrics_base_port": 0, "heartbeat_seconds": 0.5, "registry_ttl_seconds": 2.0,
                    "actor_host": "127.0.0.1", "kv_index": False},
        "router": {"auth": True, "registry_refresh_seconds": 0.25, "ping_interval_seconds": 0.3,
                   "admission": {"max_wait_seconds": 60}},
        "models": [
            {"name": MODEL, "engine": "sim", "replicas": 0,
             "sim": {"ttft_ms": 5, "itl_ms": 40, "output_tokens": 100, "max_num_seqs": 2},
             "scaling": {"min_replicas": 0, "max_replicas": 3, "target_requests_per_replica": 2,
                         "scale_up_delay_seconds": 0, "scale_down_delay_seconds": 2, "idle_ttl_seconds": 600,
                         "load_timeout_seconds": 60, "evictable": False}},
            {"name": UNPLACEABLE, "engine": "sim", "replicas": 0, "gpus_per_replica": 1,
             "scaling": {"max_replicas": 1, "idle_ttl_seconds": 3, "load_timeout_seconds": 2, "evictable": False}},
            {"name": BROKEN, "engine": "vllm", "model": "/nonexistent/fleetgate-test-model", "replicas": 0,
             "scaling": {"max_replicas": 1, "idle_ttl_seconds": 5, "load_timeout_seconds": 240, "evictable": False}},
            *({"name": name, "engine": "sim", "replicas": 0, "sim": {"ttft_ms": 5, "itl_ms": 5},
               "scaling": {"max_replicas": 1, "idle_ttl_seconds": 600, "evictable": True}} for name in EVICTABLE),
        ],
    }


@pytest.fixture(scope="module")
def cluster(
    redis_server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ReplicaController, RouterProcess]]:
    data = cluster_config(redis_server.url)
    path = Path(tmp_path_factory.mktemp("elastic")) / "elastic.yaml"
    path.write_text(yaml.safe_dump(data))
    ray.init(num_cpus=3, include_dashboard=False, namespace="fleetgate-elastic-test",
             object_store_memory=100 * 1024**2, log_to_driver=False)
    controller = ReplicaController(FleetgateConfig.model_validate(data))
    router = RouterProcess(path, redis_server.url, env={"FLEETGATE_BOOTSTRAP_KEY": ADMIN_SECRET},
                           log_path=path.with_suffix(".router.log"))
    try:
        assert controller.start(timeout=10)  # nothing to start: every model begins unloaded
        router.start()
        yield controller, router
    finally:
        router.stop()
        controller.stop(grace=5)
        ray.shutdown()


def client(router: RouterProcess) -> openai.OpenAI:
    return router.openai(ADMIN_SECRET)


def registered(redis_server, model: str) -> list[ReplicaRecord]:
    r = redis_server.client()
    records = [ReplicaRecord.model_validate_json(v) for k in r.scan_iter(REPLICA_KEY_PREFIX + "*")
               if (v := r.get(k))]
    return [rec for rec in records if rec.model == model and not rec.draining]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def listed(router: RouterProcess, model: str) -> dict[str, Any]:
    models = httpx.get(f"{router.base_url}/v1/models", headers={"authorization": f"Bearer {ADMIN_SECRET}"}).json()
    return next(m for m in models["data"] if m["id"] == model)


def unload_and_wait(router: RouterProcess, redis_server, model: str = MODEL) -> None:
    answer = httpx.post(f"{router.base_url}/v1/models/{model}/unload",
                        headers={"authorization": f"Bearer {ADMIN_SECRET}"})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: not registered(redis_server, model), 30, f"{model} unloaded")


TTL_BODIES = {
    "chat": (CHAT, {"model": "m", "messages": [{"role": "user", "content": "x"}]}),
    "completions": (COMPLETIONS, {"model": "m", "prompt": "x"}),
    "messages": (MESSAGES, {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    "responses": (RESPONSES, {"model": "m", "input": "x"}),
}


@pytest.mark.parametrize("dialect", TTL_BODIES)
def test_every_dialect_takes_a_ttl_in_seconds(dialect: str) -> None:
    wire, body = TTL_BODIES[dialect]
    assert wire.parse({**body, "ttl": 300}).ttl == 300
    assert wire.parse(body).ttl is None
    with pytest.raises(ApiError) as refused:
        wire.parse({**body, "ttl": 0})
    assert refused.value.status == 400 and refused.value.param == "ttl"


def test_first_request_loads_just_in_time_with_keepalives_then_its_ttl_unloads(cluster, redis_server) -> None:
    controller, router = cluster
    assert listed(router, MODEL)["state"] == "not-loaded" and listed(router, MODEL)["replicas"] == 0
    assert httpx.get(f"{router.base_url}/ready").status_code == 200  # an unloaded elastic model is not missing
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True, "ttl": 4,
            "max_tokens": 20}
    started = time.monotonic()
    frames: list[str] = []
    with httpx.stream("POST", f"{router.base_url}/v1/chat/completions", json=body, timeout=90,
                      headers={"authorization": f"Bearer {ADMIN_SECRET}"}) as answer:
        assert answer.status_code == 200
        for line in answer.iter_lines():
            if line:
                frames.append(line)
    waited = time.monotonic() - started
    first_data = next(i for i, f in enumerate(frames) if f.startswith("data:"))
    keepalives = [f for f in frames[:first_data] if f.startswith(":")]
    assert keepalives, f"no keepalive while the model loaded for {waited:.1f} s: {frames[:5]}"
    assert frames[-1] == "data: [DONE]"
    assert sum(1 for f in frames if '"content"' in f) >= 10  # the whole completion came
    assert listed(router, MODEL)["state"] == "loaded"
    # The request's ttl (4 s) is the model's idle TTL now: it goes down to zero after that.
    wait_for(lambda: not registered(redis_server, MODEL), 30, "the idle model to unload")
    wait_for(lambda: listed(router, MODEL)["state"] == "not-loaded", 10, "the listed state")
    wait_for(lambda: not [s for s in controller.slots if s.model.name == MODEL], 30, "the drained slot to go")


def test_load_above_target_adds_replicas_and_the_queue_drains(cluster, redis_server) -> None:
    controller, router = cluster
    sdk = client(router)
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], len(registered(redis_server, MODEL)))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def one(i: int) -> str | None:
        reply = sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"q{i}"}],
                                            max_tokens=60)
        return reply.choices[0].finish_reason

    try:
        with ThreadPoolExecutor(12) as pool:
            reasons = list(pool.map(one, range(12)))
    finally:
        stop.set()
        watcher.join()
    assert reasons == ["length"] * 12  # every request served, none shed
    assert peak[0] >= 2, f"replicas peaked at {peak[0]} under 12 requests for 2 per replica"
    unload_and_wait(router, redis_server)


def test_unload_while_requests_are_in_flight_waits_for_them(cluster, redis_server) -> None:
    _, router = cluster
    sdk = client(router)
    sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "warm"}], max_tokens=1)
    with ThreadPoolExecutor(2) as pool:
        long = [pool.submit(sdk.chat.completions.create, model=MODEL, max_tokens=50,
                            messages=[{"role": "user", "content": f"long {i}"}]) for i in range(2)]
        # Both admitted and generating (50 tokens x 40 ms) before the unload, however busy the machine is.
        wait_for(lambda: router.metric("fleetgate_admission_in_flight", model=MODEL) == 2, 20, "both in flight")
        time.sleep(0.3)
        unload_and_wait(router, redis_server)
        replies = [f.result(timeout=30) for f in long]
    assert [r.choices[0].finish_reason for r in replies] == ["length", "length"]
    assert [r.usage.completion_tokens for r in replies if r.usage] == [50, 50]
    assert listed(router, MODEL)["state"] == "not-loaded"


def test_admin_load_and_unload_and_the_model_list(cluster, redis_server) -> None:
    _, router = cluster
    headers = {"authorization": f"Bearer {ADMIN_SECRET}"}
    created = httpx.post(f"{router.base_url}/v1/admin/keys", json={"name": f"user-{uuid.uuid4().hex[:6]}"},
                         headers=headers).json()
    user = {"authorization": f"Bearer {created['secret']}"}
    refused = httpx.post(f"{router.base_url}/v1/models/{MODEL}/load", headers=user)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_role_required"
    assert httpx.post(f"{router.base_url}/v1/models/nope/load", headers=headers).status_code == 404
    assert httpx.post(f"{router.base_url}/v1/models/{MODEL}/load", headers=headers).status_code == 202
    wait_for(lambda: registered(redis_server, MODEL), 60, "the requested load")
    wait_for(lambda: listed(router, MODEL)["state"] == "loaded", 10, "the loaded state")
    ids = [m.id for m in client(router).models.list()]  # the SDK parses the extra fields
    assert {MODEL, UNPLACEABLE} <= set(ids)
    entries = httpx.get(f"{router.base_url}/v1/admin/audit", params={"action": "model.load"}, headers=headers)
    assert any(e["target"] == MODEL for e in entries.json()["data"])
    unload_and_wait(router, redis_server)


def test_a_load_that_does_not_come_is_a_503_in_each_dialects_shape(cluster) -> None:
    _, router = cluster
    headers = {"authorization": f"Bearer {ADMIN_SECRET}"}
    chat = httpx.post(f"{router.base_url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": UNPLACEABLE, "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 503
    assert chat.json()["error"]["code"] == "model_load_timeout" and "did not load" in chat.json()["error"]["message"]
    messages = httpx.post(f"{router.base_url}/v1/messages", headers=headers, timeout=30,
                          json={"model": UNPLACEABLE, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})
    assert messages.status_code == 503
    assert messages.json()["type"] == "error" and "did not load" in messages.json()["error"]["message"]
    # Streamed: the stream started (pings while it waited), then Anthropic's error event.
    with httpx.stream("POST", f"{router.base_url}/v1/messages", headers=headers, timeout=30,
                      json={"model": UNPLACEABLE, "max_tokens": 5, "stream": True,
                            "messages": [{"role": "user", "content": "x"}]}) as answer:
        text = "".join(answer.iter_text())
    assert "event: ping" in text and "event: error" in text and "did not load" in text


def test_a_load_whose_replica_fails_to_start_is_a_503_that_says_so(cluster, redis_server) -> None:
    controller, router = cluster
    headers = {"authorization": f"Bearer {ADMIN_SECRET}"}
    started = time.monotonic()
    answer = httpx.post(f"{router.base_url}/v1/chat/completions", headers=headers, timeout=240,
                        json={"model": BROKEN, "messages": [{"role": "user", "content": "hi"}]})
    waited = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "model_load_failed" and "failed to load" in error["message"]
    assert waited < 200, f"the failure took {waited:.0f} s: the load timeout (240 s), not the failure, ended it"
    unload_and_wait(router, redis_server, BROKEN)
    wait_for(lambda: not [s for s in controller.slots if s.model.name == BROKEN], 30, "the broken slot to go")


def test_a_load_that_does_not_fit_evicts_the_least_recently_used_evictable_model(cluster, redis_server) -> None:
    controller, router = cluster
    headers = {"authorization": f"Bearer {ADMIN_SECRET}"}
    first, *others, last = EVICTABLE
    for name in (first, *others):  # loaded by hand, oldest first: the 3 CPUs are full
        assert httpx.post(f"{router.base_url}/v1/models/{name}/load", headers=headers).status_code == 202
        wait_for(lambda name=name: registered(redis_server, name), 60, f"{name} loaded")
    # A request for the fourth: its replica fits only once the least recently used one is gone.
    reply = client(router).chat.completions.create(model=last, messages=[{"role": "user", "content": "x"}],
                                                   max_tokens=3)
    assert reply.choices[0].message.content
    wait_for(lambda: not registered(redis_server, first), 30, f"{first} evicted")
    assert all(registered(redis_server, name) for name in others)
    assert listed(router, first)["state"] == "not-loaded" and listed(router, last)["state"] == "loaded"
    for name in (*others, last):
        unload_and_wait(router, redis_server, name)
