"""The Mooncake trace format: one JSON request a line, read into ``TraceRequest`` rows and bounded.

    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48, 2353]}

``timestamp`` is the arrival in ms from the trace's start, ``hash_ids`` the prompt's
blocks of ``TRACE_BLOCK_TOKENS`` tokens (two requests sharing their first k ids share
their first k blocks; the last block may be partial).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Tokens per hash id in Mooncake traces.
TRACE_BLOCK_TOKENS = 512


@dataclass(frozen=True)
class TraceRequest:
    """One request of the trace: when it arrives (seconds from the trace's start), its sizes, its blocks."""

    index: int
    arrival_s: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


def parse_line(index: int, line: str) -> TraceRequest:
    row = json.loads(line)
    return TraceRequest(index=index, arrival_s=float(row["timestamp"]) / 1000.0,
                        input_length=max(1, int(row["input_length"])), output_length=max(1, int(row["output_length"])),
                        hash_ids=tuple(int(h) for h in row.get("hash_ids") or ()))


def read_trace(path: Path) -> list[TraceRequest]:
    """Every request of the trace file, in arrival order (ties keep the file's order)."""
    with path.open() as lines:
        requests = [parse_line(i, line) for i, line in enumerate(lines) if line.strip()]
    return sorted(requests, key=lambda r: r.arrival_s)


def window(requests: Sequence[TraceRequest], *, start_s: float = 0.0, duration_s: float | None = None,
           limit: int | None = None) -> list[TraceRequest]:
    """The requests arriving in ``[start_s, start_s + duration_s)`` of trace time, at most ``limit`` of them,
    with arrivals shifted so the window begins at 0."""
    if not requests:
        return []
    origin = requests[0].arrival_s + start_s
    chosen = [r for r in requests if r.arrival_s >= origin
              and (duration_s is None or r.arrival_s < origin + duration_s)]
    if limit is not None:
        chosen = chosen[:limit]
    return [TraceRequest(r.index, r.arrival_s - origin, r.input_length, r.output_length, r.hash_ids) for r in chosen]


@dataclass(frozen=True)
class TraceShape:
    """What the replay's sim must accommodate, and how much prefix reuse the window holds."""

    requests: int
    span_s: float
    longest_prompt: int
    longest_output: int
    mean_prompt: float
    # Share of the window's prompt blocks whose id appeared earlier in the window (the most any cache can serve).
    reusable_block_share: float
    unique_blocks: int


def shape(requests: Sequence[TraceRequest]) -> TraceShape:
    seen: set[int] = set()
    blocks = reused = 0
    for request in requests:
        for block in request.hash_ids:
            blocks += 1
            reused += block in seen
            seen.add(block)
    count = len(requests)
    return TraceShape(
        requests=count,
        span_s=requests[-1].arrival_s if requests else 0.0,
        longest_prompt=max((r.input_length for r in requests), default=0),
        longest_output=max((r.output_length for r in requests), default=0),
        mean_prompt=sum(r.input_length for r in requests) / count if count else 0.0,
        reusable_block_share=reused / blocks if blocks else 0.0,
        unique_blocks=len(seen),
    )
