"""Part (b), and LiteLLM's share of (d): end to end on real vLLM CPU with the bundled model.

fleetgate (router + one vLLM replica, as ``deploy/local.yaml`` ships it) and
vLLM's own OpenAI server (same model directory, same engine arguments) get the
same greedy requests at the same concurrency, one after the other: the machine
never runs two engines at once. With LiteLLM, its proxy is measured in front of
vLLM's server while that server is up.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetgate.loadtest.bench import configs
from fleetgate.loadtest.bench.cpu import CpuMeter
from fleetgate.loadtest.bench.loadgen import HttpChatTarget, LoadPlan
from fleetgate.loadtest.bench.parts.common import BenchContext, record_run, say, start_litellm_in_front
from fleetgate.loadtest.bench.processes import ProcessSet, start_redis, start_replica, start_router, start_vllm_server
from fleetgate.loadtest.bench.results import FLEETGATE, LITELLM, VLLM_SERVER
from fleetgate.replicas.bundled_model import resolve_model_path

PART = "b"
# A vLLM CPU engine loads in ~30 s with enforce_eager; leave room for a busy machine.
ENGINE_START_TIMEOUT = 900.0


@dataclass(frozen=True)
class EndToEndSizes:
    concurrency: int
    requests: int
    warmup_requests: int
    max_tokens: int


FULL = EndToEndSizes(concurrency=16, requests=160, warmup_requests=16, max_tokens=64)
QUICK = EndToEndSizes(concurrency=4, requests=8, warmup_requests=4, max_tokens=16)


def run_end_to_end(ctx: BenchContext) -> None:
    sizes = QUICK if ctx.quick else FULL
    log_dir = ctx.log_dir(PART)
    model = configs.shipped_vllm_model()
    assert model.model is not None
    model_path = resolve_model_path(model.model)
    plan = LoadPlan(sizes.concurrency, requests=sizes.requests, warmup_requests=sizes.warmup_requests)
    say(f"part (b): end to end on vLLM CPU ({model.name}, {model_path}), concurrency {sizes.concurrency}")

    def target(url: str) -> HttpChatTarget:
        return HttpChatTarget([url], model.name, sizes.max_tokens, temperature=0.0)

    cluster = configs.write_yaml(log_dir / "vllm-cluster.yaml", configs.vllm_cluster(model))
    with ProcessSet(log_dir) as processes:
        redis_url = start_redis(processes)
        replica, _ = start_replica(processes, cluster, model.name, redis_url, name="vllm-replica",
                                   timeout=ENGINE_START_TIMEOUT)
        router, router_url = start_router(processes, cluster, model.name, redis_url)
        record_run(
            ctx,
            part=PART,
            target_name=FLEETGATE,
            target=target(router_url),
            plan=plan,
            max_tokens=sizes.max_tokens,
            meters=[CpuMeter("router", router.pid), CpuMeter("engine", replica.pid)],
            measured="router",
        )

    with ProcessSet(log_dir) as processes:
        server, server_url = start_vllm_server(
            processes, model_path, model.name,
            [*configs.engine_flags(model.engine_args), "--disable-uvicorn-access-log"],
            env=model.env, timeout=ENGINE_START_TIMEOUT)
        record_run(ctx, part=PART, target_name=VLLM_SERVER, target=target(server_url), plan=plan,
                   max_tokens=sizes.max_tokens, meters=[CpuMeter("engine", server.pid)], measured="engine")
        if ctx.litellm_bin is not None:
            litellm, litellm_url = start_litellm_in_front(ctx, processes, log_dir, model.name, f"{server_url}/v1")
            record_run(ctx, part=PART, target_name=LITELLM, target=target(litellm_url), plan=plan,
                       max_tokens=sizes.max_tokens,
                       meters=[CpuMeter("litellm", litellm.pid), CpuMeter("engine", server.pid)], measured="litellm")
