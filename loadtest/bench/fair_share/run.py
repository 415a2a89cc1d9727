"""``fleetgate bench fair-share``: a heavy key and a light key on a saturated sim cluster, fair share against FIFO.

    fleetgate bench fair-share [--replicas 2] [--max-num-seqs 16] [--heavy-streams 64] [--heavy-tokens 128-384]
        [--seconds 60] [--time-scale 3] [--quick] [--out loadtest/results/fair_share] [--work-dir DIR]

One cluster for the whole run: a redis-server and ``--replicas`` sim replicas
standing for GPUs serving a mid-size model (``GpuLike``; prefix caching off, so
every prompt is prefilled and the idle TTFT is prefill + first token, not a
cache hit), auth on, two keys, ``heavy`` and ``light``. Four runs, each behind a
fresh router whose ``router.admission.policy`` comes from the environment:

1. ``idle``: the light key alone, one streamed chat request at a time
   (a 2,000-token prompt, 32 tokens out) -> its TTFT on an idle cluster;
2. ``heavy_alone`` (fair_share): the heavy key alone, ``--heavy-streams``
   streams kept in flight (1,000-token prompts, ``--heavy-tokens`` out, drawn
   uniformly) -> its throughput when nobody else asks;
3. ``fair_share`` and 4. ``fifo``: both keys at once. With 2 x 16 slots and 64
   streams, 32 of the heavy key's requests run and 32 wait in the router's
   admission queue all the time.

A run with the heavy key measures after a warm-up of 1.5 mean heavy streams (so
the streams' ends spread out instead of coming together); requests that start
in the window count for TTFT, those that end in it for tokens per second; after
the window the light key's request in flight is let finish (so slow ones are not
dropped), then the load is cut (the rest aborted). Slots in use, the queue and
the heavy key's waiting requests are sampled from the router's ``/metrics``
every half second, the machine's busy CPU over the window. Times are model time:
the sim's clock runs ``--time-scale`` times slower than the model's and every
latency is divided by it (the router's own per-request cost is real time, so it
shrinks too: a small flattering bias for every run alike).

The verdicts (``report.py``): the light key's TTFT p50 under fair share within
1.5x of idle, and the heavy key keeping at least 90 % of its throughput alone
with the slots at least 95 % busy. Results go to ``--out`` (default
loadtest/results/fair_share: latest.json, latest.md), never to the bench's own
loadtest/results/latest.*.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from fleetgate.core.config import FleetgateConfig
from fleetgate.core.local_processes import LOCALHOST, free_port
from fleetgate.loadtest import payloads
from fleetgate.loadtest.bench import configs
from fleetgate.loadtest.bench.cpu import MachineCpuMeter
from fleetgate.loadtest.bench.fair_share.report import FairShareResults, KeyStats, Run
from fleetgate.loadtest.bench.loadgen import HttpChatTarget
from fleetgate.loadtest.bench.machine import describe_machine
from fleetgate.loadtest.bench.processes import (
    REPO,
    ManagedProcess,
    ProcessFailed,
    ProcessSet,
    start_redis,
    start_replica,
    wait_until,
)
from fleetgate.loadtest.bench.run import _raise_keyboard_interrupt
from fleetgate.loadtest.bench.stats import RequestRecord
from fleetgate.loadtest.bench.trace.sim_model import GpuTiming
from fleetgate.router.auth import KeyStore

MODEL = configs.SIM_MODEL
DEFAULT_OUT = REPO / "loadtest" / "results" / "fair_share"
POLICY_ENV = "FLEETGATE_ROUTER__ADMISSION__POLICY"
SAMPLE_SECONDS = 0.5
# The light key's last request may take this long after the window (under FIFO it waits behind the backlog).
LIGHT_TAIL_TIMEOUT_S = 180.0


def say(message: str) -> None:
    print(f"[fair-share] {message}", flush=True)


@dataclass(frozen=True)
class GpuLike(GpuTiming):
    """The model the sim stands for, in model time (the trace replay's GPU timing), with some jitter."""

    jitter: float = 0.05


@dataclass(frozen=True)
class Shape:
    replicas: int = 2
    max_num_seqs: int = 16
    heavy_streams: int = 64
    heavy_tokens: tuple[int, int] = (128, 384)
    heavy_prompt_words: int = 1000
    light_tokens: int = 32
    light_prompt_words: int = 2000
    seconds: float = 60.0
    time_scale: float = 3.0
    gpu: GpuLike = field(default_factory=GpuLike)

    @property
    def capacity(self) -> int:
        return self.replicas * self.max_num_seqs

    def heavy_stream_seconds(self) -> float:
        """A heavy stream's mean duration in wall seconds, with a full batch."""
        gpu = self.gpu
        step_ms = gpu.itl_ms * (1 + gpu.itl_batch_penalty * (self.max_num_seqs - 1))
        tokens = sum(self.heavy_tokens) / 2
        prefill_ms = gpu.prefill_ms_per_1k_tokens * self.heavy_prompt_words / 1000
        return (tokens * step_ms + prefill_ms + gpu.ttft_ms) * self.time_scale / 1000

    def sim(self) -> dict[str, Any]:
        """The replicas' dilated sim settings."""
        gpu, scale = self.gpu, self.time_scale
        return {
            "ttft_ms": gpu.ttft_ms * scale, "itl_ms": gpu.itl_ms * scale,
            "prefill_ms_per_1k_tokens": gpu.prefill_ms_per_1k_tokens * scale,
            "itl_batch_penalty": gpu.itl_batch_penalty, "jitter": gpu.jitter, "max_num_seqs": self.max_num_seqs,
            "prefix_caching": False, "text": "lorem",
            "output_tokens": max(self.heavy_tokens[1], self.light_tokens) + 1, "max_context_length": 8192,
        }


QUICK = {"heavy_tokens": (32, 96), "seconds": 12.0, "heavy_streams": 24, "max_num_seqs": 4}


def shape_from(args: argparse.Namespace) -> Shape:
    low, _, high = args.heavy_tokens.partition("-")
    shape = Shape(replicas=args.replicas, max_num_seqs=args.max_num_seqs, heavy_streams=args.heavy_streams,
                  heavy_tokens=(int(low), int(high or low)), seconds=args.seconds, time_scale=args.time_scale)
    if args.quick:
        shape = Shape(**{**asdict(shape), **QUICK, "gpu": shape.gpu})
    return shape


def cluster_config(shape: Shape) -> dict[str, Any]:
    data: dict[str, Any] = {
        "redis": {"url": None},
        "router": {"host": LOCALHOST, "auth": True,
                   "admission": {"max_queued": 4 * shape.heavy_streams, "max_wait_seconds": 600}},
        "models": [{"name": MODEL, "engine": "sim", "replicas": 1, "sim": shape.sim()}],
    }
    FleetgateConfig.model_validate(data)
    return data


class KeyLoad(HttpChatTarget):
    """Streamed chat requests of one key: distinct prompts of ``prompt_words`` words (a word is a sim token),
    ``tokens`` (low, high) out, drawn uniformly."""

    def __init__(self, url: str, secret: str, name: str, prompt_words: int, tokens: tuple[int, int]) -> None:
        super().__init__([url], MODEL, tokens[1], api_key=secret)
        self.name = name
        self.prompt_words = prompt_words
        self.tokens = tokens
        self.rng = random.Random(name)

    def body(self, index: int) -> bytes:
        text = " ".join(f"{self.name}{index}w{j}" for j in range(self.prompt_words))
        return orjson.dumps(payloads.chat(MODEL, self.rng.randint(*self.tokens), True, text=text))


@dataclass
class Samples:
    slots: list[float] = field(default_factory=list)
    queued: list[float] = field(default_factory=list)
    heavy_waiting: list[float] = field(default_factory=list)

    @staticmethod
    def mean(values: list[float]) -> float:
        return statistics.fmean(values) if values else float("nan")


async def sample_router(url: str, heavy_id: str, samples: Samples, until: float) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        while time.perf_counter() < until:
            values: dict[str, float] = {}
            try:
                text = (await client.get(f"{url}/metrics")).text
            except httpx.HTTPError:
                text = ""
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels = sample.labels
                    if labels.get("model") != MODEL:
                        continue
                    if sample.name in ("fleetgate_admission_in_flight", "fleetgate_admission_queue_depth"):
                        values[sample.name] = sample.value
                    elif sample.name == "fleetgate_admission_waiting_by_key" and labels.get("key_id") == heavy_id:
                        values["heavy"] = sample.value
            samples.slots.append(values.get("fleetgate_admission_in_flight", 0.0))
            samples.queued.append(values.get("fleetgate_admission_queue_depth", 0.0))
            samples.heavy_waiting.append(values.get("heavy", 0.0))
            await asyncio.sleep(SAMPLE_SECONDS)


@dataclass
class Measured:
    light: list[RequestRecord]
    heavy: list[RequestRecord]
    window: tuple[float, float]
    samples: Samples
    machine_busy: float | None


async def measure(url: str, light: KeyLoad | None, heavy: KeyLoad | None, heavy_streams: int, warmup: float,
                  window: float, heavy_id: str) -> Measured:
    """Both loads from the start; the window opens after ``warmup`` (see the module docstring)."""
    records: dict[str, list[RequestRecord]] = {"light": [], "heavy": []}
    loads = [(load, n) for load, n in ((light, 1), (heavy, heavy_streams)) if load is not None]
    began = time.perf_counter()
    opens, closes = began + warmup, began + warmup + window
    light_done = asyncio.Event()

    async def worker(load: KeyLoad, counter: itertools.count[int]) -> None:
        while not (load is light and time.perf_counter() >= closes):
            records[load.name].append(await load.send(next(counter)))
        light_done.set()

    for load, _ in loads:
        await load.open()
    tasks = [asyncio.create_task(worker(load, counter)) for load, n in loads
             for counter in [itertools.count()] for _ in range(n)]
    samples = Samples()
    await asyncio.sleep(warmup)
    machine = MachineCpuMeter()
    machine.start()
    await sample_router(url, heavy_id, samples, closes)
    machine.stop()
    if light is not None:
        await asyncio.wait_for(light_done.wait(), LIGHT_TAIL_TIMEOUT_S)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for load, _ in loads:
        await load.close()
    cores = len(os.sched_getaffinity(0))
    busy = machine.seconds / (window * cores) if machine.seconds is not None else None
    return Measured(records["light"], records["heavy"], (opens, closes), samples, busy)


async def create_keys(redis_url: str) -> dict[str, tuple[str, str]]:
    """The two keys: name -> (secret, key id)."""
    client = aioredis.from_url(redis_url)
    try:
        store = KeyStore(client)
        made = {}
        for name in ("heavy", "light"):
            secret, info = await store.create(name)
            made[name] = (secret, info.id)
        return made
    finally:
        await client.aclose()


def healthy_replicas(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=2.0).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fleetgate_healthy_replicas" and sample.labels.get("model") == MODEL:
                return sample.value
    return 0.0


def start_router(processes: ProcessSet, config: Path, redis_url: str, policy: str,
                 replicas: int) -> tuple[ManagedProcess, str]:
    """A router with ``router.admission.policy: policy``; returns once it sees every replica (auth on, so
    ``/v1/models`` is not the readiness check)."""
    port = free_port()
    argv = [sys.executable, "-m", "fleetgate.launcher.cli", "router", "--config", str(config), "--host", LOCALHOST,
            "--port", str(port)]
    process = processes.spawn(f"router-{policy}", argv, env={"FLEETGATE_REDIS__URL": redis_url, POLICY_ENV: policy})
    url = f"http://{LOCALHOST}:{port}"
    wait_until(lambda: healthy_replicas(url) == replicas, process, 60, "router sees the replicas")
    return process, url


def run_fair_share(args: argparse.Namespace) -> int:
    shape = shape_from(args)
    out_dir = Path(args.out or DEFAULT_OUT).resolve()
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="fleetgate-fair-share-")).resolve()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    config = configs.write_yaml(work_dir / "cluster.yaml", cluster_config(shape))
    results = FairShareResults(machine=describe_machine(), quick=args.quick, shape=asdict(shape), sim=shape.sim(),
                               capacity=shape.capacity,
                               started_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
    warmup = 1.5 * shape.heavy_stream_seconds()
    plan = [("idle", "fair_share", True, False, shape.seconds / 3),
            ("heavy_alone", "fair_share", False, True, shape.seconds / 2),
            ("fair_share", "fair_share", True, True, shape.seconds),
            ("fifo", "fifo", True, True, shape.seconds)]
    say(f"{shape.capacity} slots, heavy {shape.heavy_streams} streams (~{shape.heavy_stream_seconds():.1f} s wall "
        f"each), warm-up {warmup:.0f} s; logs and config in {work_dir}")
    try:
        with ProcessSet(work_dir) as processes:
            redis_url = start_redis(processes)
            for index in range(shape.replicas):
                start_replica(processes, config, MODEL, redis_url, name=f"sim-{index}", timeout=120)
            keys = asyncio.run(create_keys(redis_url))
            for name, policy, with_light, with_heavy, window in plan:
                router, url = start_router(processes, config, redis_url, policy, shape.replicas)
                light = KeyLoad(url, keys["light"][0], "light", shape.light_prompt_words,
                                (shape.light_tokens, shape.light_tokens)) if with_light else None
                heavy = KeyLoad(url, keys["heavy"][0], "heavy", shape.heavy_prompt_words,
                                shape.heavy_tokens) if with_heavy else None
                say(f"{name} ({policy}): {window:.0f} s window")
                measured = asyncio.run(measure(url, light, heavy, shape.heavy_streams,
                                               warmup if with_heavy else 2.0, window, keys["heavy"][1]))
                processes.stop(router)
                scale = shape.time_scale
                run = Run(
                    name=name, policy=policy, window_seconds=window,
                    light=KeyStats.of(measured.light, measured.window, scale) if with_light else None,
                    heavy=KeyStats.of(measured.heavy, measured.window, scale) if with_heavy else None,
                    slots_in_use=Samples.mean(measured.samples.slots), queued=Samples.mean(measured.samples.queued),
                    heavy_waiting=Samples.mean(measured.samples.heavy_waiting), machine_busy=measured.machine_busy,
                )
                results.runs.append(run)
                say(f"  light TTFT p50 {run.light.ttft_p50_ms if run.light else float('nan'):.0f} ms, heavy "
                    f"{run.heavy.tokens_per_second if run.heavy else float('nan'):.0f} tok/s, slots "
                    f"{run.slots_in_use:.1f}/{shape.capacity}, queued {run.queued:.1f}")
                results.save(out_dir)
    except (ProcessFailed, OSError, RuntimeError, TimeoutError) as exc:
        results.notes.append(f"the run failed: {exc}".split("\n")[0] + f" (logs in {work_dir})")
        say(results.notes[-1])
        results.save(out_dir)
        return 1
    for verdict in results.verdicts().values():
        say(verdict)
    say(f"report: {results.save(out_dir)}")
    return 0
