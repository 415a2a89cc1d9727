"""One policy run's numbers, from its records and what was measured around them (pure, unit-tested).

The field names of ``PolicyResult`` are the keys of the JSON line the replay
prints per run: times in ms, ratios 0..1, CPU in µs per request. TTFT and output
tokens/s are in the modelled GPU's time (wall time over ``time_scale``); the
client's send lateness, the wall time and CPU are the machine's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetgate.loadtest.bench.stats import percentile, ratio
from fleetgate.loadtest.bench.trace.replay import TraceRecord


@dataclass
class PolicyResult:
    policy: str
    speed: float
    dialect: str
    replicas: int
    routers: int
    requests: int
    errors: int
    ttft_ms_p50: float
    ttft_ms_p90: float
    ttft_ms_p99: float
    output_tok_s: float
    # Engine-reported: sum of cached prompt tokens over sum of prompt tokens (the responses' usage).
    cache_hit_ratio: float
    # The routers' fleetgate_prefix_predicted_cached_tokens_total over the same prompt tokens.
    predicted_hit_ratio: float
    # The busiest replica's mean queue (running + waiting) over the fleet's mean.
    load_spread: float
    # All router processes' CPU over the run (routing, proxying, streaming every token) per request and per
    # streamed token.
    router_cpu_us_per_request: float
    router_cpu_us_per_output_token: float
    prompt_tokens: int
    mean_prompt_tokens: float
    wall_s: float
    time_scale: float
    # Share of the machine's cores busy over the run (anything on the machine).
    cores_busy: float | None
    # p99 of how late the client sent requests after their arrival time (it keeps up when small).
    send_lateness_ms_p99: float
    # Successful requests that did not stream exactly their trace output_length.
    output_length_mismatches: int = 0
    routing_reasons: dict[str, float] = field(default_factory=dict)
    mean_queue_by_replica: dict[str, float] = field(default_factory=dict)
    first_error: str | None = None

    def json_line(self) -> dict[str, Any]:
        line: dict[str, Any] = _finite(dataclasses.asdict(self))
        return line


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class RunContext:
    """What a run measured besides its records."""

    policy: str
    speed: float
    dialect: str
    replicas: int
    routers: int
    # The routers' CPU over the run, their idle rate before it already subtracted.
    router_cpu_seconds: float
    machine_busy_seconds: float | None
    cores: int | None
    predicted_cached_tokens: float | None
    mean_queue_by_replica: Mapping[str, float]
    load_spread: float
    routing_reasons: Mapping[str, float] = field(default_factory=dict)
    # The sim clock's dilation (sim_model.time_scale): latencies are divided by it, rates multiplied.
    time_scale: float = 1.0


def summarize(records: Sequence[TraceRecord], wall_seconds: float, ctx: RunContext) -> PolicyResult:
    ok = [r for r in records if r.ok]
    ttfts = [r.ttft * 1000 / ctx.time_scale for r in ok if r.ttft is not None]
    prompt_tokens = sum(r.prompt_tokens for r in ok)
    busy = (ctx.machine_busy_seconds / (wall_seconds * ctx.cores)
            if ctx.machine_busy_seconds is not None and ctx.cores and wall_seconds > 0 else None)
    return PolicyResult(
        policy=ctx.policy, speed=ctx.speed, dialect=ctx.dialect, replicas=ctx.replicas, routers=ctx.routers,
        requests=len(ok), errors=len(records) - len(ok),
        ttft_ms_p50=percentile(ttfts, 50), ttft_ms_p90=percentile(ttfts, 90), ttft_ms_p99=percentile(ttfts, 99),
        output_tok_s=ratio(sum(r.tokens for r in ok) * ctx.time_scale, wall_seconds),
        cache_hit_ratio=ratio(sum(r.cached_tokens for r in ok), prompt_tokens),
        predicted_hit_ratio=(ratio(ctx.predicted_cached_tokens, prompt_tokens)
                             if ctx.predicted_cached_tokens is not None else math.nan),
        load_spread=ctx.load_spread,
        router_cpu_us_per_request=ratio(ctx.router_cpu_seconds * 1e6, len(records)),
        router_cpu_us_per_output_token=ratio(ctx.router_cpu_seconds * 1e6, sum(r.tokens for r in records)),
        prompt_tokens=prompt_tokens, mean_prompt_tokens=ratio(prompt_tokens, len(ok)),
        wall_s=wall_seconds, time_scale=ctx.time_scale, cores_busy=busy,
        send_lateness_ms_p99=percentile([r.lateness * 1000 for r in records], 99),
        output_length_mismatches=sum(1 for r in ok if r.tokens != r.expected_tokens),
        routing_reasons=dict(ctx.routing_reasons), mean_queue_by_replica=dict(ctx.mean_queue_by_replica),
        first_error=next((r.error for r in records if r.error), None),
    )
