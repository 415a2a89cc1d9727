"""Part (a), and LiteLLM's share of (d): what the router adds on top of a zero-latency sim replica.

The same streaming work goes straight to the replica over gRPC (the baseline),
through a bare uvicorn/Starlette/grpc.aio relay (``bare_relay``: the floor the
router's stack allows), through the router over HTTP, and (with LiteLLM)
through LiteLLM's proxy in front of that router, at each concurrency. TTFT
differences are what each hop adds; the hop's own CPU time over the window,
divided by the tokens and the requests it streamed, is its cost. Two more runs
per HTTP path at one concurrency, with 1-token and long outputs, separate the
per-request from the per-token CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetgate.loadtest.bench import configs
from fleetgate.loadtest.bench.cpu import CpuMeter
from fleetgate.loadtest.bench.loadgen import GrpcGenerateTarget, HttpChatTarget, LoadPlan
from fleetgate.loadtest.bench.parts.common import BenchContext, record_run, say, start_litellm_in_front
from fleetgate.loadtest.bench.processes import ProcessSet, start_bare_relay, start_redis, start_replica, start_router
from fleetgate.loadtest.bench.results import BARE_RELAY, FLEETGATE, GRPC_DIRECT, LITELLM
from fleetgate.loadtest.bench.stats import split_cpu_cost

PART = "a"
SHORT_LABEL = "CPU split: 1-token outputs"
LONG_LABEL = "CPU split: long outputs"


@dataclass(frozen=True)
class OverheadSizes:
    concurrencies: tuple[int, ...]
    seconds: float
    warmup_seconds: float
    max_tokens: int
    split_concurrency: int
    split_long_tokens: int


FULL = OverheadSizes(concurrencies=(1, 64, 256), seconds=15, warmup_seconds=3, max_tokens=32,
                     split_concurrency=64, split_long_tokens=256)
QUICK = OverheadSizes(concurrencies=(1, 16), seconds=2, warmup_seconds=0.5, max_tokens=16,
                      split_concurrency=16, split_long_tokens=64)


def run_overhead(ctx: BenchContext) -> None:
    sizes = QUICK if ctx.quick else FULL
    log_dir = ctx.log_dir(PART)
    say("part (a): router overhead over a zero-latency sim replica"
        + (" (+ LiteLLM, part d)" if ctx.litellm_bin else ""))
    cluster = configs.write_yaml(log_dir / "sim-zero.yaml", configs.sim_cluster(
        ttft_ms=0, itl_ms=0, output_tokens=max(sizes.max_tokens, sizes.split_long_tokens)))
    model = configs.SIM_MODEL
    with ProcessSet(log_dir) as processes:
        redis_url = start_redis(processes)
        replica, record = start_replica(processes, cluster, model, redis_url, name="sim-replica")
        router, router_url = start_router(processes, cluster, model, redis_url)
        relay, relay_url = start_bare_relay(processes, record.address, model)
        # (name, base URL, metered process name) of every HTTP path, cheapest first.
        http_targets = [(BARE_RELAY, relay_url, "bare-relay"), (FLEETGATE, router_url, "router")]
        metered = {"replica": replica, "router": router, "bare-relay": relay}
        if ctx.litellm_bin is not None:
            litellm, litellm_url = start_litellm_in_front(ctx, processes, log_dir, model, f"{router_url}/v1")
            http_targets.append((LITELLM, litellm_url, "litellm"))
            metered["litellm"] = litellm

        def meters() -> list[CpuMeter]:
            return [CpuMeter(name, process.pid) for name, process in metered.items()]

        def run_http(name: str, url: str, measured: str, plan: LoadPlan, max_tokens: int, label: str = "") -> None:
            record_run(ctx, part=PART, target_name=name, target=HttpChatTarget([url], model, max_tokens), plan=plan,
                       max_tokens=max_tokens, meters=meters(), measured=measured, label=label)

        for concurrency in sizes.concurrencies:
            plan = LoadPlan(concurrency, seconds=sizes.seconds, warmup_seconds=sizes.warmup_seconds)
            record_run(ctx, part=PART, target_name=GRPC_DIRECT, target=GrpcGenerateTarget(record.address, model,
                       sizes.max_tokens), plan=plan, max_tokens=sizes.max_tokens, meters=meters(), measured="replica")
            for name, url, measured in http_targets:
                run_http(name, url, measured, plan, sizes.max_tokens)

        split_plan = LoadPlan(sizes.split_concurrency, seconds=sizes.seconds, warmup_seconds=sizes.warmup_seconds)
        for name, url, measured in http_targets:
            run_http(name, url, measured, split_plan, 1, SHORT_LABEL)
            run_http(name, url, measured, split_plan, sizes.split_long_tokens, LONG_LABEL)
            short = ctx.results.find(PART, name, label=SHORT_LABEL)
            long = ctx.results.find(PART, name, label=LONG_LABEL)
            split = split_cpu_cost(short.summary, long.summary) if short and long else None
            if split is not None:
                ctx.results.cpu_splits[name] = split
                say(f"  ({PART}) {name} CPU: {split.per_request * 1e6:.0f} µs per request + "
                    f"{split.per_token * 1e6:.1f} µs per token")
