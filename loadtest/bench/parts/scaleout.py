"""Part (c): scale-out. 1 and 2 router processes × 1 and 4 sim replicas with realistic sim latency.

Clients are spread evenly over the routers (request i goes to router i mod n);
every router sees every replica through the shared Redis registry. On a small
machine all processes share the same cores, so this shows how the parts divide
the CPU as much as how throughput grows; the report prints the machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetgate.loadtest.bench import configs
from fleetgate.loadtest.bench.cpu import CpuMeter
from fleetgate.loadtest.bench.loadgen import HttpChatTarget, LoadPlan
from fleetgate.loadtest.bench.parts.common import BenchContext, record_run, say
from fleetgate.loadtest.bench.processes import ProcessSet, start_redis, start_replica, start_router
from fleetgate.loadtest.bench.results import FLEETGATE

PART = "c"
TOPOLOGIES = ((1, 1), (1, 4), (2, 1), (2, 4))  # (routers, replicas)


@dataclass(frozen=True)
class ScaleOutSizes:
    concurrency: int
    seconds: float
    warmup_seconds: float
    max_tokens: int
    ttft_ms: float = 20.0
    itl_ms: float = 5.0


FULL = ScaleOutSizes(concurrency=128, seconds=15, warmup_seconds=3, max_tokens=32)
QUICK = ScaleOutSizes(concurrency=16, seconds=2, warmup_seconds=0.5, max_tokens=16)


def topology_label(routers: int, replicas: int) -> str:
    return f"{routers} router{'s' if routers > 1 else ''} × {replicas} replica{'s' if replicas > 1 else ''}"


def run_scale_out(ctx: BenchContext) -> None:
    sizes = QUICK if ctx.quick else FULL
    log_dir = ctx.log_dir(PART)
    model = configs.SIM_MODEL
    cluster = configs.write_yaml(log_dir / "sim-realistic.yaml", configs.sim_cluster(
        ttft_ms=sizes.ttft_ms, itl_ms=sizes.itl_ms, output_tokens=sizes.max_tokens))
    say(f"part (c): scale-out, sim ttft {sizes.ttft_ms:g} ms itl {sizes.itl_ms:g} ms, concurrency {sizes.concurrency}")
    plan = LoadPlan(sizes.concurrency, seconds=sizes.seconds, warmup_seconds=sizes.warmup_seconds)
    for routers, replicas in TOPOLOGIES:
        label = topology_label(routers, replicas)
        with ProcessSet(log_dir) as processes:
            redis_url = start_redis(processes)
            for i in range(replicas):
                start_replica(processes, cluster, model, redis_url, name=f"sim-replica-{i}")
            started = [start_router(processes, cluster, model, redis_url, name=f"router-{i}") for i in range(routers)]
            meters = [CpuMeter(f"router-{i}", process.pid) for i, (process, _) in enumerate(started)]
            row = record_run(ctx, part=PART, target_name=FLEETGATE,
                             target=HttpChatTarget([url for _, url in started], model, sizes.max_tokens),
                             plan=plan, max_tokens=sizes.max_tokens, meters=meters, label=label)
            # The routers' CPU together is what the topology spends on routing.
            row.cpu["routers"] = sum(row.cpu.get(meter.name) or 0.0 for meter in meters)
