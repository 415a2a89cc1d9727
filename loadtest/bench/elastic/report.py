"""``fleetgate bench elastic``'s numbers: replica-seconds from sampled counts, TTFT percentiles of the burst, the
side-by-side table (pure: ``run.py`` measures, this computes and renders)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from fleetgate.loadtest.bench.stats import RequestRecord, percentile


def replica_seconds(samples: Sequence[tuple[float, int]], end: float) -> float:
    """The integral of a step function: each sample ``(t, count)`` holds until the next one (the last until
    ``end``)."""
    total = 0.0
    ends = [t for t, _ in samples[1:]] + [end] if samples else []
    for (at, count), following in zip(samples, ends, strict=True):
        total += count * max(0.0, following - at)
    return total


@dataclass(frozen=True)
class Fleet:
    """One fleet's run: its burst's requests, the replica counts it held, its cost."""

    name: str
    requests: int
    errors: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    ttft_max_ms: float
    first_request_ttft_ms: float
    tokens_per_second: float
    peak_replicas: int
    replica_seconds: float
    run_seconds: float
    # (seconds since the run began, replicas held) at every change.
    timeline: list[tuple[float, int]] = field(default_factory=list)


def fleet_stats(name: str, records: Sequence[RequestRecord], samples: Sequence[tuple[float, int]], start: float,
                end: float, burst_seconds: float) -> Fleet:
    ok = [r for r in records if r.ok and r.ttft is not None]
    ttfts = [r.ttft * 1000 for r in ok if r.ttft is not None]
    first = min(records, key=lambda r: r.started) if records else None
    timeline: list[tuple[float, int]] = []
    for at, count in samples:
        if not timeline or timeline[-1][1] != count:
            timeline.append((round(at - start, 1), count))
    return Fleet(
        name=name, requests=len(records), errors=len(records) - len(ok),
        ttft_p50_ms=percentile(ttfts, 50) if ttfts else float("nan"),
        ttft_p99_ms=percentile(ttfts, 99) if ttfts else float("nan"),
        ttft_max_ms=max(ttfts, default=float("nan")),
        first_request_ttft_ms=(first.ttft * 1000) if first is not None and first.ttft is not None else float("nan"),
        tokens_per_second=sum(r.tokens for r in ok) / burst_seconds if burst_seconds else 0.0,
        peak_replicas=max((c for _, c in samples), default=0),
        replica_seconds=replica_seconds(samples, end), run_seconds=end - start, timeline=timeline,
    )


@dataclass(frozen=True)
class ElasticResults:
    shape: dict[str, Any]
    fleets: list[Fleet]
    machine: dict[str, Any]
    when: str

    def to_json(self) -> dict[str, Any]:
        return {"shape": self.shape, "fleets": [asdict(f) for f in self.fleets], "machine": self.machine,
                "when": self.when}


def markdown(results: ElasticResults) -> str:
    shape = results.shape
    lines = [
        "# fleetgate bench elastic",
        "",
        f"{results.when}. A bursty load on the sim: {shape['idle_before']:g} s idle, {shape['burst']:g} s of "
        f"{shape['streams']} concurrent streams ({shape['max_tokens']} tokens each), {shape['idle_after']:g} s idle. "
        f"Fixed fleet: {shape['replicas']} replicas x max_num_seqs {shape['max_num_seqs']} for the whole run. Elastic: "
        f"0..{shape['replicas']} replicas (target {shape['max_num_seqs']} requests per replica, idle TTL "
        f"{shape['idle_ttl']:g} s), starting unloaded, so the burst's first requests wait for a just-in-time load.",
        "",
        "| fleet | requests | errors | TTFT p50 ms | TTFT p99 ms | TTFT max ms | first request TTFT ms | tok/s | "
        "peak replicas | replica-seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in results.fleets:
        lines.append(f"| {f.name} | {f.requests} | {f.errors} | {f.ttft_p50_ms:.0f} | {f.ttft_p99_ms:.0f} | "
                     f"{f.ttft_max_ms:.0f} | {f.first_request_ttft_ms:.0f} | {f.tokens_per_second:.0f} | "
                     f"{f.peak_replicas} | {f.replica_seconds:.0f} |")
    by_name = {f.name: f for f in results.fleets}
    if {"elastic", "fixed"} <= set(by_name) and by_name["fixed"].replica_seconds:
        share = by_name["elastic"].replica_seconds / by_name["fixed"].replica_seconds
        lines += ["", f"The elastic fleet used {share:.0%} of the fixed fleet's replica-seconds."]
    lines += ["", "Replica count over time (seconds since the run began: replicas):", ""]
    for f in results.fleets:
        lines.append(f"- {f.name}: " + ", ".join(f"{t:g}: {c}" for t, c in f.timeline))
    return "\n".join(lines) + "\n"
