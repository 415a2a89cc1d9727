"""The issue's targets for the trace replay, judged per speed (printed, never asserted).

At one speed, with ``p2c``, ``prefix`` and ``oracle`` all measured: prefix TTFT p50
at least 5× lower than p2c's and within 1.2× of the oracle's; engine cache hit
ratio within 5 points of the oracle's; no replica's mean queue above 1.5× the
fleet mean; router CPU per request ≤ 1 ms with a 32k-token prompt (all the routers' CPU
over the run per request, streaming included; a pass on shorter prompts is not
meaningful). Latency,
cache and load verdicts go through ``report.guarded_verdict``: taken on saturated
cores (any run of the comparison), or from a gap to the oracle that came out
negative, they are not meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fleetgate.loadtest.bench.report import (
    MET,
    NOT_MEANINGFUL,
    NOT_MEASURED,
    ROUTER_CPU_PER_REQUEST_MAX,
    TargetRow,
    guarded_verdict,
    times,
    verdict,
)
from fleetgate.loadtest.bench.stats import ratio
from fleetgate.loadtest.bench.trace.summary import PolicyResult

PREFIX_VS_P2C_TTFT_MIN = 5.0
PREFIX_VS_ORACLE_TTFT_MAX = 1.2
HIT_RATIO_GAP_MAX = 0.05
LOAD_SPREAD_MAX = 1.5
CPU_PROMPT_TOKENS = 32_768


def _find(results: Sequence[PolicyResult], policy: str, speed: float) -> PolicyResult | None:
    return next((r for r in results if r.policy == policy and r.speed == speed), None)


def _busiest(*runs: PolicyResult | None) -> float | None:
    return max((r.cores_busy for r in runs if r is not None and r.cores_busy is not None), default=None)


def cpu_verdict(result: PolicyResult) -> str:
    """Router CPU per request against 1 ms: a miss stands (longer prompts cost more), a pass on prompts shorter
    than 32k tokens says nothing about 32k."""
    value = result.router_cpu_us_per_request * 1e-6
    judged = verdict(value, ROUTER_CPU_PER_REQUEST_MAX)
    if judged == MET and result.mean_prompt_tokens < CPU_PROMPT_TOKENS:
        return f"{NOT_MEANINGFUL} (prompts shorter than 32k tokens)"
    return judged


def _where(speed: float, knee: float | None, swept: Sequence[float]) -> str:
    """Where ``speed`` stands against p2c's knee."""
    if knee == speed:
        return f"speed {speed:g}, the knee"
    if knee is not None:
        return f"speed {speed:g}, not the knee ({knee:g})"
    if swept:
        return f"speed {speed:g}; no knee found up to speed {max(swept):g}"
    return f"speed {speed:g}, knee not measured"


def target_rows(results: Sequence[PolicyResult], speed: float, knee: float | None,
                swept: Sequence[float] = ()) -> list[TargetRow]:
    """The targets at ``speed``; ``knee`` and the ``swept`` speeds say where that speed stands."""
    at = _where(speed, knee, swept)
    p2c, prefix, oracle = (_find(results, p, speed) for p in ("p2c", "prefix", "oracle"))
    rows = []
    if prefix and p2c:
        value = ratio(p2c.ttft_ms_p50, prefix.ttft_ms_p50)
        rows.append(TargetRow(f"prefix TTFT p50 ≥ 5× lower than p2c ({at})", times(value),
                              guarded_verdict(value, PREFIX_VS_P2C_TTFT_MIN, at_most=False,
                                              busy=_busiest(prefix, p2c))))
    else:
        rows.append(TargetRow(f"prefix TTFT p50 ≥ 5× lower than p2c ({at})", "–", NOT_MEASURED))
    if prefix and oracle:
        value = ratio(prefix.ttft_ms_p50, oracle.ttft_ms_p50)
        rows.append(TargetRow(f"prefix TTFT p50 within 1.2× of the oracle ({at})", times(value),
                              guarded_verdict(value, PREFIX_VS_ORACLE_TTFT_MAX, busy=_busiest(prefix, oracle))))
        gap = oracle.cache_hit_ratio - prefix.cache_hit_ratio
        rows.append(TargetRow(f"prefix cache hit ratio within 5 points of the oracle ({at})",
                              f"{gap * 100:.1f} points" if not math.isnan(gap) else "–",
                              guarded_verdict(gap, HIT_RATIO_GAP_MAX, busy=_busiest(prefix, oracle),
                                              difference=True)))
    else:
        rows.append(TargetRow(f"prefix TTFT p50 within 1.2× of the oracle ({at})", "–", NOT_MEASURED))
        rows.append(TargetRow(f"prefix cache hit ratio within 5 points of the oracle ({at})", "–", NOT_MEASURED))
    if prefix:
        rows.append(TargetRow(f"prefix: no replica's mean queue above 1.5× the fleet mean ({at})",
                              times(prefix.load_spread),
                              guarded_verdict(prefix.load_spread, LOAD_SPREAD_MAX, busy=_busiest(prefix))))
        rows.append(TargetRow(f"prefix: router CPU ≤ 1 ms per request at a 32k-token prompt ({at})",
                              f"{prefix.router_cpu_us_per_request:.0f} µs (mean prompt "
                              f"{prefix.mean_prompt_tokens:.0f} tokens; streaming included: "
                              f"{prefix.router_cpu_us_per_output_token:.0f} µs per output token)",
                              cpu_verdict(prefix)))
    else:
        rows.append(TargetRow(f"prefix: no replica's mean queue above 1.5× the fleet mean ({at})", "–",
                              NOT_MEASURED))
        rows.append(TargetRow(f"prefix: router CPU ≤ 1 ms per request at a 32k-token prompt ({at})", "–",
                              NOT_MEASURED))
    return rows
