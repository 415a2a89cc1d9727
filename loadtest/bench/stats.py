"""Pure statistics over the requests of one load run: percentiles, throughput, CPU per unit of work.

Nothing here does I/O or reads a clock, so the numbers the report prints can be
checked by unit tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestRecord:
    """One request as the load generator saw it (times from ``time.perf_counter``)."""

    started: float
    ended: float
    first_token: float | None = None
    tokens: int = 0
    error: str | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def ok(self) -> bool:
        return self.error is None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks (numpy's default).

    NaN for an empty sequence.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    lower = math.floor(position)
    upper = math.ceil(position)
    if lower == upper:
        return ordered[lower]
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class RunSummary:
    """What a report needs from one measured run (seconds, tokens, counts)."""

    requests: int
    errors: int
    tokens: int
    wall_seconds: float
    ttft_p50: float
    ttft_p99: float
    latency_p50: float
    # CPU seconds (user + system) of the measured process, when one was measured.
    cpu_seconds: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.wall_seconds if self.wall_seconds > 0 else math.nan

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds > 0 else math.nan

    @property
    def cpu_per_token(self) -> float | None:
        if self.cpu_seconds is None or self.tokens == 0:
            return None
        return self.cpu_seconds / self.tokens

    @property
    def cpu_per_request(self) -> float | None:
        if self.cpu_seconds is None or self.requests == 0:
            return None
        return self.cpu_seconds / self.requests


def summarize(records: Sequence[RequestRecord], wall_seconds: float, cpu_seconds: float | None = None) -> RunSummary:
    """Summary of a run: successful requests count toward tokens and latencies, failed ones toward ``errors``."""
    ok = [r for r in records if r.ok]
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    return RunSummary(
        requests=len(ok),
        errors=len(records) - len(ok),
        tokens=sum(r.tokens for r in ok),
        wall_seconds=wall_seconds,
        ttft_p50=percentile(ttfts, 50),
        ttft_p99=percentile(ttfts, 99),
        latency_p50=percentile([r.ended - r.started for r in ok], 50),
        cpu_seconds=cpu_seconds,
    )


@dataclass(frozen=True)
class CpuCostSplit:
    """CPU cost per request and per token, fitted from two runs that differ only in tokens per request."""

    per_request: float
    per_token: float


def split_cpu_cost(short: RunSummary, long: RunSummary) -> CpuCostSplit | None:
    """Solve ``cpu = per_request × requests + per_token × tokens`` from a short-output and a long-output run.

    Each run gives its mean CPU and mean tokens per request; two runs with
    different tokens per request fix the line's slope (per token) and intercept
    (per request). None when the runs cannot separate the two (same mean output
    length, or no CPU measured).
    """
    short_cpu, long_cpu = short.cpu_per_request, long.cpu_per_request
    if short_cpu is None or long_cpu is None or short.requests == 0 or long.requests == 0:
        return None
    short_tokens = short.tokens / short.requests
    long_tokens = long.tokens / long.requests
    if math.isclose(short_tokens, long_tokens):
        return None
    per_token = (long_cpu - short_cpu) / (long_tokens - short_tokens)
    per_request = short_cpu - per_token * short_tokens
    return CpuCostSplit(per_request=per_request, per_token=per_token)


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is zero or either is NaN."""
    if denominator == 0 or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator
