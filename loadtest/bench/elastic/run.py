"""``fleetgate bench elastic``: a bursty load (idle, burst, idle) on the sim, the elastic fleet against a fixed
fleet sized for the burst, one after the other in one run.

    fleetgate bench elastic [--replicas 3] [--max-num-seqs 4] [--streams 12] [--idle-before 10] [--burst 30]
        [--idle-after 30] [--idle-ttl 10] [--quick] [--out loadtest/results/elastic] [--work-dir DIR]

One redis-server and one local Ray for the run. Each fleet gets its own model name, a ReplicaController in this
process (replicas as Ray actors, as in production) and a fresh router:

- ``fixed``: ``--replicas`` replicas, started (and waited for) before the run: what a fleet sized for the burst
  holds all day;
- ``elastic``: ``scaling`` 0..``--replicas``, target ``--max-num-seqs`` requests per replica, no scale-up delay,
  a 5 s scale-down delay and an idle TTL of ``--idle-ttl``; it starts unloaded, so the burst's first request
  loads a replica just in time and the rest follow as the load rises.

The load: ``--idle-before`` s of nothing, ``--burst`` s of ``--streams`` streamed chat requests kept in flight
(32 tokens out each), ``--idle-after`` s of nothing. Measured: the burst's TTFT (p50, p99, max, the first
request's) and throughput, and the replica-seconds each fleet held over the run (the controller's slots, starting,
up or draining, sampled every ``SAMPLE_SECONDS``). Results go to ``--out`` (default loadtest/results/elastic:
latest.json, latest.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import ray
import yaml

from fleetgate.core.config import FleetgateConfig
from fleetgate.loadtest.bench.elastic.report import ElasticResults, Fleet, fleet_stats, markdown
from fleetgate.loadtest.bench.loadgen import HttpChatTarget
from fleetgate.loadtest.bench.machine import describe_machine
from fleetgate.loadtest.bench.processes import REPO, ProcessSet, start_redis, start_router
from fleetgate.loadtest.bench.stats import RequestRecord
from fleetgate.replicas.controller import ReplicaController

DEFAULT_OUT = REPO / "loadtest" / "results" / "elastic"
SAMPLE_SECONDS = 0.25
MAX_TOKENS = 32
SIM = {"ttft_ms": 30, "itl_ms": 20, "output_tokens": 64, "jitter": 0.05}
QUICK = {"idle_before": 3.0, "burst": 10.0, "idle_after": 12.0, "idle_ttl": 4.0}


def say(message: str) -> None:
    print(f"[elastic] {message}", flush=True)


def shape_from(args: argparse.Namespace) -> dict[str, Any]:
    shape = {"replicas": args.replicas, "max_num_seqs": args.max_num_seqs, "streams": args.streams,
             "idle_before": args.idle_before, "burst": args.burst, "idle_after": args.idle_after,
             "idle_ttl": args.idle_ttl, "max_tokens": MAX_TOKENS, "sim": SIM}
    if args.quick:
        shape.update(QUICK)
    return shape


def fleet_config(fleet: str, shape: dict[str, Any], redis_url: str) -> dict[str, Any]:
    model: dict[str, Any] = {"name": f"bench-{fleet}", "engine": "sim",
                             "sim": {**shape["sim"], "max_num_seqs": shape["max_num_seqs"]}}
    if fleet == "fixed":
        model["replicas"] = shape["replicas"]
    else:
        model["replicas"] = 0
        model["scaling"] = {"min_replicas": 0, "max_replicas": shape["replicas"],
                            "target_requests_per_replica": shape["max_num_seqs"], "scale_up_delay_seconds": 0,
                            "scale_down_delay_seconds": 5, "idle_ttl_seconds": shape["idle_ttl"],
                            "load_timeout_seconds": 120}
    data = {
        "redis": {"url": redis_url},
        "replica": {"base_port": 0, "metrics_base_port": 0, "heartbeat_seconds": 0.5, "registry_ttl_seconds": 2.0,
                    "actor_host": "127.0.0.1", "kv_index": False},
        "router": {"host": "127.0.0.1", "auth": False, "registry_refresh_seconds": 0.25,
                   "ping_interval_seconds": 1.0, "admission": {"max_queued": 4096, "max_wait_seconds": 300}},
        "models": [model],
    }
    FleetgateConfig.model_validate(data)
    return data


async def burst(url: str, model: str, streams: int, seconds: float) -> list[RequestRecord]:
    """``streams`` streamed requests kept in flight for ``seconds``."""
    target = HttpChatTarget([url], model, MAX_TOKENS)
    await target.open()
    records: list[RequestRecord] = []
    counter = itertools.count()
    end = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < end:
            records.append(await target.send(next(counter)))

    try:
        await asyncio.gather(*(worker() for _ in range(streams)))
    finally:
        await target.close()
    return records


def sample_slots(controller: ReplicaController, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    while not stop.is_set():
        samples.append((time.perf_counter(), len(controller.slots)))
        stop.wait(SAMPLE_SECONDS)


def run_fleet(fleet: str, shape: dict[str, Any], processes: ProcessSet, redis_url: str, work_dir: Path) -> Fleet:
    data = fleet_config(fleet, shape, redis_url)
    model = data["models"][0]["name"]
    path = work_dir / f"{fleet}.yaml"
    path.write_text(yaml.safe_dump(data))
    controller = ReplicaController(FleetgateConfig.model_validate(data))
    say(f"{fleet}: starting the controller")
    if not controller.start(timeout=180):
        raise RuntimeError(f"{fleet}: replicas did not start")
    router, url = start_router(processes, path, model, redis_url, name=f"router-{fleet}")
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=sample_slots, args=(controller, samples, stop), daemon=True)
    try:
        start = time.perf_counter()
        sampler.start()
        say(f"{fleet}: idle {shape['idle_before']:g} s")
        time.sleep(shape["idle_before"])
        say(f"{fleet}: burst of {shape['streams']} streams for {shape['burst']:g} s")
        records = asyncio.run(burst(url, model, shape["streams"], shape["burst"]))
        say(f"{fleet}: idle {shape['idle_after']:g} s")
        time.sleep(shape["idle_after"])
        end = time.perf_counter()
    finally:
        stop.set()
        sampler.join()
        processes.stop(router)
        controller.stop(grace=5)
    stats = fleet_stats(fleet, records, samples, start, end, shape["burst"])
    say(f"{fleet}: {stats.requests} requests, TTFT p99 {stats.ttft_p99_ms:.0f} ms, "
        f"{stats.replica_seconds:.0f} replica-seconds")
    return stats


def run_elastic(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    shape = shape_from(args)
    out = Path(args.out) if args.out else DEFAULT_OUT
    work_dir = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="fleetgate-bench-elastic-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    say(f"logs and configs in {work_dir}")
    fleets: list[Fleet] = []
    with ProcessSet(work_dir) as processes:
        redis_url = start_redis(processes)
        ray.init(num_cpus=shape["replicas"] + 1, include_dashboard=False, namespace="fleetgate-bench-elastic",
                 object_store_memory=100 * 1024**2, log_to_driver=False)
        try:
            for fleet in ("elastic", "fixed"):
                fleets.append(run_fleet(fleet, shape, processes, redis_url, work_dir))
        finally:
            ray.shutdown()
    results = ElasticResults(shape=shape, fleets=fleets, machine=describe_machine(),
                             when=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_bytes(orjson.dumps(results.to_json(), option=orjson.OPT_INDENT_2))
    (out / "latest.md").write_text(markdown(results))
    sys.stdout.write(markdown(results))
    say(f"results in {out}")
    return 0
