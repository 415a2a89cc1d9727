"""The replay's cluster config: one sim model shaped like an H100 serving a mid-size model (still the simulator).

Numbers (``GpuModel``, all overridable from the command line): prefill 50 ms per
1,000 uncached prompt tokens (≈ 20k tokens/s), 15 ms per decode step growing 0.5 %
per other running sequence, at most 128 running sequences, a KV cache of 64-token
blocks (coarse blocks keep the sim's CPU low on 190k-token prompts) holding
``kv_cache_tokens`` (default 262,144: 256k tokens, under pressure on these traces,
so blocks are evicted), and never less than the window's longest prompt + output
with headroom. The context length and the sim's natural output length follow the
window too, so every request is served and generates exactly its ``output_length``
tokens (``max_tokens`` cuts the sim's longer natural answer). Routers take bodies
up to ``MAX_BODY_BYTES``; the policy is set per run through the environment.

``time_scale`` k dilates the model's clock: every sim time is written k× longer
and the trace is replayed k× slower (``replay_speed``), so queues behave as at
the nominal speed while the machine streams k× fewer tokens per wall second; the
summary divides latencies by k back into the model's time. On a small machine
the router's and replica's CPU per streamed token, not the modelled GPU, is
otherwise what saturates first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fleetgate.core.config import FleetgateConfig
from fleetgate.loadtest.bench.trace.mooncake import TraceShape

MODEL = "sim"
MAX_BODY_BYTES = 64 * 1024 * 1024
# The longest prompt + output must fit this many times over in one replica's KV cache.
KV_HEADROOM = 1.25


@dataclass(frozen=True)
class GpuTiming:
    """The timing of the model the sim stands for (a GPU serving a mid-size model), in model time: shared by the
    benchmarks that shape the sim like one (the trace replay, fleetgate bench fair-share)."""

    prefill_ms_per_1k_tokens: float = 50.0
    ttft_ms: float = 10.0
    itl_ms: float = 15.0
    itl_batch_penalty: float = 0.005


@dataclass(frozen=True)
class GpuModel(GpuTiming):
    max_num_seqs: int = 128
    kv_block_size: int = 64
    kv_cache_tokens: int = 262_144
    time_scale: float = 1.0

    def kv_cache_blocks(self, trace: TraceShape) -> int:
        needed = math.ceil(KV_HEADROOM * (trace.longest_prompt + trace.longest_output))
        return math.ceil(max(self.kv_cache_tokens, needed) / self.kv_block_size)


def replay_speed(speed: float, time_scale: float) -> float:
    """How much faster than the trace the client sends, for a nominal ``speed`` on a clock dilated ``time_scale``×."""
    return speed / time_scale


def context_length(trace: TraceShape) -> int:
    """Room for the longest prompt and output, rounded up to 1,024 tokens."""
    return math.ceil((trace.longest_prompt + trace.longest_output + 1) / 1024) * 1024


def replay_cluster(trace: TraceShape, gpu: GpuModel) -> dict[str, Any]:
    """The validated cluster config (one sim model, no auth) the replay's replicas and routers run with."""
    data: dict[str, Any] = {
        "redis": {"url": None},
        "router": {"host": "127.0.0.1", "auth": False, "max_body_bytes": MAX_BODY_BYTES},
        "models": [{
            "name": MODEL, "engine": "sim", "replicas": 1,
            "sim": {
                "ttft_ms": gpu.ttft_ms * gpu.time_scale, "itl_ms": gpu.itl_ms * gpu.time_scale,
                "itl_batch_penalty": gpu.itl_batch_penalty,
                "prefill_ms_per_1k_tokens": gpu.prefill_ms_per_1k_tokens * gpu.time_scale,
                "max_num_seqs": gpu.max_num_seqs,
                "kv_block_size": gpu.kv_block_size, "kv_cache_blocks": gpu.kv_cache_blocks(trace),
                "prefix_caching": True, "max_context_length": context_length(trace),
                "output_tokens": max(1, trace.longest_output), "text": "lorem",
            },
        }],
    }
    FleetgateConfig.model_validate(data)
    return data
