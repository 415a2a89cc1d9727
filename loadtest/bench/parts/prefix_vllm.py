"""Part (e): prefix-aware routing against power-of-two choices on real engines, two vLLM CPU replicas, side by side.

Two ``fleetgate replica`` processes of the bundled model (the shipped config's
engine arguments) register in one Redis and stay up for the whole part; each
policy gets its own router process (``router.routing_policy``) and its own
fresh Claude-Code-shaped sessions (``cc_sessions``: a long system prompt per
session, history resent every turn, one request at a time per session), so no
policy finds another's prompts in the caches. Both replicas get a warm-up
request first, directly over gRPC. Per policy (``prefix_summary``): later turns
with engine-reported cached tokens, later-turn prompt tokens cached, session
moves, TTFT p50 of hits and misses, the router's predicted cached tokens.

Written to ``loadtest/results/prefix_vllm/`` (``latest.md``, ``latest.json`` with
every turn's record) and one JSON object per policy on its own stdout line; a
note in the bench report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path

import grpc
import httpx

from fleetgate.loadtest.bench import configs
from fleetgate.loadtest.bench.parts.cc_sessions import SessionPlan, TurnRecord, run_sessions
from fleetgate.loadtest.bench.parts.common import BenchContext, say
from fleetgate.loadtest.bench.parts.prefix_summary import (
    PolicySummary,
    render_markdown,
    router_counters,
    summarize_policy,
)
from fleetgate.loadtest.bench.processes import REPO, ProcessSet, start_redis, start_replica, start_router
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc

PART = "e"
POLICIES = ("power_of_two", "prefix")
REPLICAS = 2
ENGINE_START_TIMEOUT = 900.0
OUT_DIR = REPO / "loadtest" / "results" / "prefix_vllm"

# 35 rules ≈ 1,050 prompt tokens of system prompt (SmolLM2's tokenizer); four turns stay inside its 2,048 tokens.
FULL = SessionPlan(sessions=6, turns=4, rules=35, max_tokens=32, start_stagger_s=3.0)
QUICK = SessionPlan(sessions=2, turns=3, rules=35, max_tokens=16, start_stagger_s=1.0)


def run_prefix_routing_vllm(ctx: BenchContext) -> None:
    plan = QUICK if ctx.quick else FULL
    log_dir = ctx.log_dir(PART)
    model = configs.shipped_vllm_model()
    say(f"part (e): prefix routing on vLLM CPU, {REPLICAS} replicas of {model.name}, {plan.sessions} sessions × "
        f"{plan.turns} turns per policy ({', '.join(POLICIES)})")
    summaries: list[PolicySummary] = []
    turns: dict[str, list[TurnRecord]] = {}
    load_at_start = os.getloadavg()[0]
    with ProcessSet(log_dir) as processes:
        redis_url = start_redis(processes)
        replica_config = configs.write_yaml(log_dir / "vllm-replica.yaml", configs.vllm_cluster(model))
        addresses = []
        for n in range(REPLICAS):
            _, record = start_replica(processes, replica_config, model.name, redis_url, name=f"vllm-replica-{n}",
                                      timeout=ENGINE_START_TIMEOUT)
            addresses.append(record.address)
        asyncio.run(_warm_up(addresses, model.name))
        for policy in POLICIES:
            summary, turns[policy] = _run_policy(processes, log_dir, model.name, policy, plan, redis_url)
            summaries.append(summary)
    _publish(ctx, summaries, turns, plan, model.name, (load_at_start, os.getloadavg()[0]))


def _run_policy(processes: ProcessSet, log_dir: Path, model: str, policy: str, plan: SessionPlan,
                redis_url: str) -> tuple[PolicySummary, list[TurnRecord]]:
    cluster = configs.vllm_cluster(configs.shipped_vllm_model())
    cluster["router"]["routing_policy"] = policy
    config = configs.write_yaml(log_dir / f"router-{policy}.yaml", cluster)
    router, url = start_router(processes, config, model, redis_url, name=f"router-{policy}")
    try:
        records = asyncio.run(run_sessions(url, model, plan, prefix=f"{policy}-session"))
        counters = router_counters(httpx.get(f"{url}/metrics", timeout=10).text)
    finally:
        processes.stop(router)
    summary = summarize_policy(policy, records, counters)
    say(f"  (e) {policy}: later turns cached {summary.later_turns_cached}/{summary.later_turns}, "
        f"prompt cached {summary.later_cached_tokens}/{summary.later_prompt_tokens}, moves {summary.session_moves}, "
        f"TTFT p50 hit {summary.ttft_ms_p50_hit} ms miss {summary.ttft_ms_p50_miss} ms, errors {summary.errors}")
    first_error = next((r.error for r in records if r.error), "")
    if first_error:
        say(f"    first error: {first_error}")
    return summary, records


async def _warm_up(addresses: list[str], model: str) -> None:
    """One short greedy request on each replica, straight over gRPC (the first request of an engine is slow)."""
    for address in addresses:
        async with grpc.aio.insecure_channel(address) as channel:
            request = pb.GenerateRequest(
                request_id=f"warm-up-{address}", model=model, sampling=pb.Sampling(temperature=0.0, max_tokens=4),
                messages=[pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text="Hello.")])],
            )
            async for _ in replica_pb2_grpc.ReplicaStub(channel).Generate(request):
                pass


def _publish(ctx: BenchContext, summaries: list[PolicySummary], turns: dict[str, list[TurnRecord]],
             plan: SessionPlan, model: str, load: tuple[float, float]) -> None:
    machine = ctx.results.machine
    setup = (f"{REPLICAS} vLLM CPU replicas of `{model}` (bundled, shipped engine arguments) behind one router per "
             f"policy, run one after the other in one bench run; {plan.sessions} Claude-Code-shaped sessions per "
             f"policy over `/v1/messages` (a ~1,050-token system prompt of its own per session after the changing "
             f"billing header, history resent each turn, {plan.turns} turns, one request at a time per session, "
             f"sessions side by side, starting {plan.start_stagger_s:g} s apart, at most {plan.max_tokens} output "
             f"tokens, greedy). Machine: "
             f"{machine.get('usable_cores', '?')} cores, shared (1-minute load average {load[0]:.1f} at the start, "
             f"{load[1]:.1f} at the end){' (quick run)' if ctx.quick else ''}. Later turns: every turn "
             f"after a session's first. TTFT is measured by the client; hits are turns with cached tokens.")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "latest.md").write_text(render_markdown(summaries, setup))
    (OUT_DIR / "latest.json").write_text(json.dumps(
        {"quick": ctx.quick, "started_at": ctx.results.started_at, "machine": machine, "setup": setup,
         "policies": [s.to_json() for s in summaries],
         "turns": {policy: [dataclasses.asdict(r) for r in records] for policy, records in turns.items()}},
        indent=2) + "\n")
    for summary in summaries:
        print(json.dumps(summary.to_json()), flush=True)
        ctx.results.notes.append(
            f"part e, {summary.policy}: {summary.later_turns_cached}/{summary.later_turns} later turns with cached "
            f"tokens, {summary.later_cached_tokens}/{summary.later_prompt_tokens} later-turn prompt tokens cached "
            f"(loadtest/results/prefix_vllm/latest.md)")
    say(f"part (e) results: {OUT_DIR / 'latest.md'}")
