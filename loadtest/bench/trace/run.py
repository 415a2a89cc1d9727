"""``fleetgate bench trace``: replay a trace window once per policy (and speed) and write the report.

    fleetgate bench trace --trace FILE [--replicas 8] [--routers 2] [--speed 1[,2,...]]
        [--policies random,p2c,prefix,oracle] [--dialect chat|messages|responses] [--duration 60]
        [--limit N] [--quick] [--find-knee] [--out loadtest/results/trace]

Each run starts a fresh cluster (``cluster``), replays the window open-loop
(``replay``) while sampling the replicas' load and the routers' and machine's CPU,
scrapes the routers' metrics, summarises it, prints its JSON line on stdout and
rewrites latest.md / latest.json / the plots. With ``--find-knee`` a p2c sweep over
speeds comes first, and the policies then run at the knee it found. A policy this
checkout's router does not accept is skipped with a note (exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from fleetgate.core.config import RouterConfig
from fleetgate.loadtest.bench import configs
from fleetgate.loadtest.bench.cpu import CpuMeter, MachineCpuMeter
from fleetgate.loadtest.bench.machine import describe_machine
from fleetgate.loadtest.bench.processes import REPO, ProcessFailed, ProcessSet
from fleetgate.loadtest.bench.run import _raise_keyboard_interrupt
from fleetgate.loadtest.bench.trace import mooncake, options, sampling
from fleetgate.loadtest.bench.trace.bodies import Dialect
from fleetgate.loadtest.bench.trace.cluster import TraceCluster, start_cluster
from fleetgate.loadtest.bench.trace.knee import knee_speed
from fleetgate.loadtest.bench.trace.plots import write_plots
from fleetgate.loadtest.bench.trace.replay import ReplayPlan, ReplayRun, replay, warm_up
from fleetgate.loadtest.bench.trace.report import render_markdown
from fleetgate.loadtest.bench.trace.results import TraceResults
from fleetgate.loadtest.bench.trace.sim_model import MODEL, GpuModel, replay_cluster, replay_speed
from fleetgate.loadtest.bench.trace.summary import PolicyResult, RunContext, summarize

DEFAULT_OUT = REPO / "loadtest" / "results" / "trace"
# Seconds the routers' idle CPU is measured for before each replay.
IDLE_BASELINE_S = 2.0


def say(message: str) -> None:
    print(f"[trace] {message}", flush=True)


def accepted_policy(setting: str) -> bool:
    """Whether this checkout's router accepts ``router.routing_policy: setting``."""
    try:
        RouterConfig.model_validate({"routing_policy": setting})
    except ValidationError:
        return False
    return True


@dataclass(frozen=True)
class Invocation:
    """One command's fixed inputs: the trace, the cluster's shape and config, where things go."""

    trace: list[mooncake.TraceRequest]
    config_path: Path
    replicas: int
    routers: int
    dialect: Dialect
    drain_timeout_s: float
    work_dir: Path
    cores: int | None
    time_scale: float


@dataclass(frozen=True)
class Measured:
    run: ReplayRun
    # The routers' CPU seconds over the replay, less their idle rate over the same time.
    router_cpu_seconds: float
    machine_busy_seconds: float | None
    sampler: sampling.LoadSampler
    metrics_texts: list[str]


async def _routers_idle_rate(meters: list[CpuMeter]) -> float:
    """CPU seconds per second the routers spend with nothing to serve (registry refresh, heartbeats)."""
    for meter in meters:
        meter.start()
    await asyncio.sleep(IDLE_BASELINE_S)
    for meter in meters:
        meter.stop()
    return sum(m.seconds or 0.0 for m in meters) / IDLE_BASELINE_S


async def _measure(inv: Invocation, cluster: TraceCluster, requests: list[mooncake.TraceRequest],
                   speed: float) -> Measured:
    meters = [CpuMeter(f"router-{i}", p.pid) for i, p in enumerate(cluster.routers)]
    machine = MachineCpuMeter()
    sampler = sampling.LoadSampler(cluster.redis_url)
    plan = ReplayPlan(requests, cluster.router_urls, MODEL, inv.dialect, replay_speed(speed, inv.time_scale),
                      inv.drain_timeout_s)
    warm = await warm_up(plan)
    if failed := next((r.error for r in warm if r.error), None):
        raise RuntimeError(f"warm-up request failed: {failed}")
    idle_rate = await _routers_idle_rate(meters)
    for meter in (*meters, machine):
        meter.start()
    sampler.start()
    began = time.perf_counter()
    try:
        run = await replay(plan)
    finally:
        await sampler.stop()
        for meter in (*meters, machine):
            meter.stop()
    busy = sum(m.seconds or 0.0 for m in meters)
    return Measured(run=run, router_cpu_seconds=max(0.0, busy - idle_rate * (time.perf_counter() - began)),
                    machine_busy_seconds=machine.seconds, sampler=sampler,
                    metrics_texts=await sampling.scrape(cluster.router_urls))


def run_policy(inv: Invocation, policy: str, speed: float, requests: list[mooncake.TraceRequest]) -> PolicyResult:
    """One policy at one speed on a fresh cluster."""
    setting = options.POLICY_SETTINGS[policy]
    with ProcessSet(inv.work_dir / f"{policy}-speed-{speed:g}") as processes:
        cluster = start_cluster(processes, inv.config_path, replicas=inv.replicas, routers=inv.routers,
                                routing_policy=setting)
        span = requests[-1].arrival_s if requests else 0.0
        say(f"{policy} ({setting}) at speed {speed:g}: {len(requests)} requests over "
            f"{span / replay_speed(speed, inv.time_scale):.0f} s")
        measured = asyncio.run(_measure(inv, cluster, requests, speed))
    texts = measured.metrics_texts
    # None (reported as NaN) when no router counted predicted tokens.
    predicted = sampling.counter_totals(texts, sampling.PREDICTED_CACHED_TOKENS).get("")
    reasons = sampling.counter_totals(texts, sampling.ROUTING_DECISIONS, by_label="reason")
    queues = measured.sampler.mean_queues()
    ctx = RunContext(policy=policy, speed=speed, dialect=inv.dialect.name, replicas=inv.replicas,
                     routers=inv.routers, router_cpu_seconds=measured.router_cpu_seconds,
                     machine_busy_seconds=measured.machine_busy_seconds, cores=inv.cores,
                     predicted_cached_tokens=predicted, mean_queue_by_replica=queues,
                     load_spread=sampling.load_spread(queues), routing_reasons=reasons, time_scale=inv.time_scale)
    return summarize(measured.run.records, measured.run.wall_seconds, ctx)


def _emit(results: TraceResults, result: PolicyResult, out_dir: Path, *, sweep: bool = False) -> None:
    """Record ``result``, print its JSON line, rewrite the outputs."""
    (results.knee_sweep if sweep else results.runs).append(result)
    print(json.dumps({**result.json_line(), **({"knee_sweep": True} if sweep else {})}), flush=True)
    write_outputs(results, out_dir)


def write_outputs(results: TraceResults, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    results.save(out_dir / "latest.json")
    report = out_dir / "latest.md"
    report.write_text(render_markdown(results, write_plots(results, out_dir)))
    return report


def _find_knee(inv: Invocation, results: TraceResults, args: argparse.Namespace, out_dir: Path) -> float | None:
    """p2c over the sweep's speeds, each for ``--knee-window`` wall seconds, until its TTFT p90 passes the factor."""
    window_s = options.QUICK_KNEE_WINDOW_S if args.quick else args.knee_window
    for speed in options.parse_speeds(args.knee_speeds):
        requests = mooncake.window(inv.trace, start_s=args.start,
                                   duration_s=window_s * replay_speed(speed, inv.time_scale),
                                   limit=args.limit or (options.QUICK_LIMIT if args.quick else None))
        _emit(results, run_policy(inv, "p2c", speed, requests), out_dir, sweep=True)
        knee = knee_speed([(r.speed, r.ttft_ms_p90) for r in results.knee_sweep], args.knee_factor)
        if knee is not None:
            return knee
    return None


def _gpu_model(args: argparse.Namespace) -> GpuModel:
    overrides = {"prefill_ms_per_1k_tokens": args.prefill_ms_per_1k, "itl_ms": args.itl_ms,
                 "max_num_seqs": args.max_num_seqs, "kv_cache_tokens": args.kv_cache_tokens,
                 "time_scale": args.time_scale}
    return dataclasses.replace(GpuModel(), **{k: v for k, v in overrides.items() if v is not None})


def run_trace(args: argparse.Namespace) -> int:
    try:
        policies = options.parse_policies(args.policies)
        speeds = options.parse_speeds(args.speed)
        dialect = Dialect(args.dialect)
    except ValueError as exc:
        print(f"fleetgate bench trace: {exc}")
        return 2
    trace_path = Path(args.trace)
    trace = mooncake.read_trace(trace_path)
    duration = options.QUICK_DURATION_S if args.quick else (args.duration or None)
    limit = args.limit or (options.QUICK_LIMIT if args.quick else None)
    requests = mooncake.window(trace, start_s=args.start, duration_s=duration, limit=limit)
    if not requests:
        print(f"fleetgate bench trace: no request of {trace_path} in the window")
        return 2
    out_dir = Path(args.out or DEFAULT_OUT).resolve()
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="fleetgate-trace-")).resolve()
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    # One sim config for every run of the invocation, sized for the whole trace's longest request.
    gpu = _gpu_model(args)
    cluster_config = replay_cluster(mooncake.shape(trace), gpu)
    config_path = configs.write_yaml(work_dir / "trace-sim.yaml", cluster_config)
    machine = describe_machine()
    inv = Invocation(trace=trace, config_path=config_path, replicas=args.replicas, routers=args.routers,
                     dialect=dialect, drain_timeout_s=args.drain_timeout, work_dir=work_dir,
                     cores=len(os.sched_getaffinity(0)), time_scale=gpu.time_scale)
    results = TraceResults(
        machine=machine, started_at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        quick=args.quick, trace=str(trace_path),
        window={"start_s": args.start, "duration_s": duration, "limit": limit,
                "shape": dataclasses.asdict(mooncake.shape(requests))},
        sim=cluster_config["models"][0]["sim"], time_scale=gpu.time_scale, replicas=args.replicas,
        routers=args.routers, dialect=dialect.name,
        knee_factor=args.knee_factor)
    say(f"{len(requests)} requests of {trace_path.name}; policies {', '.join(policies)}; logs in {work_dir}")
    skipped = [p for p in policies if not accepted_policy(options.POLICY_SETTINGS[p])]
    for policy in skipped:
        results.notes.append(f"policy {policy} skipped: this router does not accept routing_policy "
                             f"{options.POLICY_SETTINGS[policy]!r} yet")
        say(results.notes[-1])
    failed = bool(skipped)
    try:
        if args.find_knee:
            results.knee = _find_knee(inv, results, args, out_dir)
            swept = [r.speed for r in results.knee_sweep]
            speeds = [results.knee if results.knee is not None else max(swept)]
            if results.knee is None:
                results.notes.append(f"p2c's TTFT p90 never passed {args.knee_factor:g}× light load; policies "
                                     f"ran at the fastest swept speed {speeds[0]:g}")
        for speed in speeds:
            for policy in (p for p in policies if p not in skipped):
                _emit(results, run_policy(inv, policy, speed, requests), out_dir)
    except (ProcessFailed, OSError, RuntimeError) as exc:
        failed = True
        results.notes.append(f"run failed: {exc}".split("\n")[0] + f" (logs in {work_dir})")
        say(f"run failed:\n{exc}")
    say(f"report: {write_outputs(results, out_dir)}")
    return 1 if failed else 0
