"""The elastic fleet on vLLM CPU: the bundled SmolLM2-135M (tests/configs/vllm.yaml's engine settings) as an elastic
model with no replica at start, loaded and unloaded through the admin API on a local Ray, behind a real router with
auth on, the session's real Redis, real gRPC; a chat completion with the openai SDK in between.

Memory: the session's ``vllm_replica`` and ``vllm_embedding_replica`` (conftest.py) live until the session ends, so
this engine may run beside them; each CPU engine holds its KV cache (VLLM_CPU_KVCACHE_SPACE, 1 GiB) plus its weights
and runtime: measured, the machine's used memory rose by 4.3 GB at this engine's peak (loading its weights),
so three engines fit in 24 GiB. The test refuses to start an engine with less than ``MIN_AVAILABLE_GIB`` available."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import ray
import yaml

from conftest import VLLM_CONFIG
from fleetgate.core.config import FleetgateConfig
from fleetgate.replicas.controller import ReplicaController
from router_process import RouterProcess
from test_elastic_fleet import ADMIN_SECRET, listed, registered, wait_for

MODEL = "el-smollm2"  # not the session replica's name: both register in the session's Redis
LOAD_SECONDS = 300  # a CPU engine starts in ~30-60 s, several times that on a loaded machine
MIN_AVAILABLE_GIB = 5.0


def cluster_config(redis_url: str) -> dict[str, Any]:
    engine = yaml.safe_load(VLLM_CONFIG.read_text())["models"][0]
    return {
        "redis": {"url": redis_url},
        "replica": {"base_port": 0, "metrics_base_port": 0, "heartbeat_seconds": 0.5, "registry_ttl_seconds": 2.0,
                    "actor_host": "127.0.0.1", "kv_index": False},
        "router": {"auth": True, "registry_refresh_seconds": 0.25, "ping_interval_seconds": 0.3},
        "models": [{**engine, "name": MODEL, "replicas": 0,
                    "scaling": {"min_replicas": 0, "max_replicas": 1, "idle_ttl_seconds": 600,
                                "load_timeout_seconds": LOAD_SECONDS, "evictable": False}}],
    }


@pytest.fixture(scope="module")
def cluster(
    redis_server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ReplicaController, RouterProcess]]:
    data = cluster_config(redis_server.url)
    path = Path(tmp_path_factory.mktemp("elastic-vllm")) / "elastic-vllm.yaml"
    path.write_text(yaml.safe_dump(data))
    ray.init(num_cpus=2, include_dashboard=False, namespace="fleetgate-elastic-vllm-test",
             object_store_memory=100 * 1024**2, log_to_driver=False)
    controller = ReplicaController(FleetgateConfig.model_validate(data))
    router = RouterProcess(path, redis_server.url, env={"FLEETGATE_BOOTSTRAP_KEY": ADMIN_SECRET},
                           log_path=path.with_suffix(".router.log"))
    try:
        assert controller.start(timeout=10)  # nothing to start: the model begins unloaded
        router.start()
        yield controller, router
    finally:
        router.stop()
        controller.stop(grace=20)
        ray.shutdown()


def test_load_chat_and_unload_the_bundled_model_through_the_api(cluster, redis_server) -> None:
    controller, router = cluster
    admin = {"authorization": f"Bearer {ADMIN_SECRET}"}
    entry = listed(router, MODEL)
    assert entry["state"] == "not-loaded" and entry["replicas"] == 0 and not registered(redis_server, MODEL)

    created = httpx.post(f"{router.base_url}/v1/admin/keys", json={"name": f"user-{uuid.uuid4().hex[:6]}"},
                         headers=admin).json()
    refused = httpx.post(f"{router.base_url}/v1/models/{MODEL}/load",
                         headers={"authorization": f"Bearer {created['secret']}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_role_required"
    assert listed(router, MODEL)["state"] == "not-loaded"

    available = psutil.virtual_memory().available / 1024**3
    assert available > MIN_AVAILABLE_GIB, f"{available:.1f} GiB available: too little for another CPU engine"
    started = time.monotonic()
    assert httpx.post(f"{router.base_url}/v1/models/{MODEL}/load", headers=admin).status_code == 202
    states: list[tuple[str, float]] = []  # each state seen, and when it was first seen

    def loaded() -> bool:
        state = listed(router, MODEL)["state"]
        if not states or states[-1][0] != state:
            states.append((state, round(time.monotonic() - started, 1)))
        return state == "loaded"

    wait_for(loaded, LOAD_SECONDS, f"{MODEL} to load (states seen: {states})")
    load_seconds = time.monotonic() - started
    # The state comes from the controller, which reads the load request within its 1 s loop: `not-loaded` may
    # show for that long after the 202, then `loading` until the engine is up.
    seen = [state for state, _ in states]
    assert seen in (["loading", "loaded"], ["not-loaded", "loading", "loaded"]), states
    assert dict(states)["loading"] < 5, states
    assert listed(router, MODEL)["replicas"] == 1 and len(registered(redis_server, MODEL)) == 1

    reply = router.openai(ADMIN_SECRET).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}],
        max_tokens=16, temperature=0)
    text = reply.choices[0].message.content or ""
    assert sum(c.isalpha() for c in text) >= 3, f"no real text: {text!r}"
    assert reply.usage is not None and reply.usage.completion_tokens > 0

    started = time.monotonic()
    assert httpx.post(f"{router.base_url}/v1/models/{MODEL}/unload", headers=admin).status_code == 202
    wait_for(lambda: not registered(redis_server, MODEL), 60, f"{MODEL} to unload")
    wait_for(lambda: listed(router, MODEL)["state"] == "not-loaded", 10, "the listed state")
    wait_for(lambda: not [s for s in controller.slots if s.model.name == MODEL], 60, "the drained slot to go")
    assert listed(router, MODEL)["replicas"] == 0
    print(f"loaded in {load_seconds:.1f} s (states {states}), unloaded in {time.monotonic() - started:.1f} s, "
          f"{available:.1f} GiB available before the load, reply {text!r}")
