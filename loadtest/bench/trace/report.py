"""The trace replay's markdown report: what was replayed on what, the targets per speed, one table per speed.

Pure functions of ``TraceResults``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fleetgate.loadtest.bench.report import _table, percent
from fleetgate.loadtest.bench.trace.mooncake import TRACE_BLOCK_TOKENS
from fleetgate.loadtest.bench.trace.results import TraceResults
from fleetgate.loadtest.bench.trace.summary import PolicyResult
from fleetgate.loadtest.bench.trace.verdicts import target_rows


def _num(value: float | None, fmt: str = ".0f", unit: str = "") -> str:
    return "–" if value is None or math.isnan(value) else f"{value:{fmt}}{unit}"


def _setup_section(results: TraceResults) -> list[str]:
    window, sim, machine = results.window, results.sim, results.machine
    shape = window.get("shape") or {}
    kv_tokens = sim.get("kv_cache_blocks", 0) * sim.get("kv_block_size", 0)
    k = results.time_scale
    dilation = (f"; its clock dilated {k:g}× (sim times written {k:g}× longer, the trace sent {k:g}× slower, "
                "TTFT and tokens/s reported in the model's time) so the machine streams fewer tokens per second"
                if k != 1 else "")
    unique_tokens = shape.get("unique_blocks", 0) * TRACE_BLOCK_TOKENS
    duration = window.get("duration_s")
    return [
        f"- trace: `{results.trace}`; window: {shape.get('requests')} requests from trace second "
        f"{window.get('start_s', 0):g}" + (f" over {duration:g} s" if duration else " to the end")
        + (f", at most {window['limit']}" if window.get("limit") else "")
        + f"; mean prompt {_num(shape.get('mean_prompt'))} tokens, longest {shape.get('longest_prompt')} + "
        f"{shape.get('longest_output')} output; {percent(shape.get('reusable_block_share'))} of its prompt blocks "
        "repeat an earlier block (the most any cache can serve)",
        f"- cluster: {results.replicas} sim replicas, {results.routers} router process(es) (request i → router "
        f"i mod {results.routers}), one redis-server; every policy run starts all of them afresh (cold caches, "
        f"empty prefix index); dialect {results.dialect}, streamed",
        f"- the simulator, shaped like an H100 serving a mid-size model: prefill "
        f"{sim.get('prefill_ms_per_1k_tokens', 0) / k:g} ms per 1k uncached tokens, decode step "
        f"{sim.get('itl_ms', 0) / k:g} ms "
        f"(+{sim.get('itl_batch_penalty', 0) * 100:g} % per other running sequence), ≤ {sim.get('max_num_seqs')} "
        f"running, KV cache {sim.get('kv_cache_blocks')} blocks × {sim.get('kv_block_size')} tokens "
        f"({kv_tokens:,} tokens per replica, {kv_tokens * results.replicas:,} in the fleet against "
        f"{unique_tokens:,} distinct prompt tokens in the window), context {sim.get('max_context_length')}"
        + dilation,
        f"- machine: {machine.get('cpu_model')}, {machine.get('usable_cores')} usable cores, "
        f"{machine.get('ram_gib')} GiB RAM; load generator, routers, replicas and Redis share them; load average "
        f"at start {machine.get('load_average_at_start')}",
    ]


def _policy_rows(runs: Sequence[PolicyResult]) -> list[list[str]]:
    return [[
        r.policy, f"{_num(r.ttft_ms_p50)} / {_num(r.ttft_ms_p90)} / {_num(r.ttft_ms_p99)}",
        _num(r.output_tok_s), percent(r.cache_hit_ratio), percent(r.predicted_hit_ratio),
        _num(r.load_spread, ".2f", "×"),
        f"{_num(r.router_cpu_us_per_request, '.0f', ' µs')} ({_num(r.router_cpu_us_per_output_token, '.0f', ' µs')})",
        f"{r.requests} / {r.errors}", percent(r.cores_busy), _num(r.send_lateness_ms_p99, ".0f", " ms"),
    ] for r in runs]


_POLICY_HEADER = ["policy", "TTFT p50 / p90 / p99 (ms)", "output tok/s", "cache hit (engine)", "predicted hit",
                  "load spread", "router CPU / request (/ output token)", "requests / errors", "cores busy",
                  "send lateness p99"]


def _speed_section(results: TraceResults, speed: float) -> list[str]:
    runs = [r for r in results.runs if r.speed == speed]
    lines = [f"## Speed {speed:g}", "", *_table(_POLICY_HEADER, _policy_rows(runs)), ""]
    light = min(results.knee_sweep, key=lambda r: r.speed, default=None)
    p2c = next((r for r in runs if r.policy == "p2c"), None)
    if light and p2c and light.ttft_ms_p90 > 0:
        lines += [f"p2c's TTFT p90 here is {p2c.ttft_ms_p90 / light.ttft_ms_p90:.1f}× its light-load value "
                  f"({light.ttft_ms_p90:.0f} ms at speed {light.speed:g} in the sweep).", ""]
    reasons = [[r.policy, ", ".join(f"{k} {v:.0f}" for k, v in sorted(r.routing_reasons.items())) or "–"]
               for r in runs]
    lines += ["Routing decisions by reason (the routers' `fleetgate_routing_decisions_total`):", "",
              *_table(["policy", "reasons"], reasons), ""]
    errors = [f"- {r.policy}: {r.errors} errors, first: `{r.first_error}`" for r in runs if r.first_error]
    mismatches = [f"- {r.policy}: {r.output_length_mismatches} requests did not stream their trace output_length"
                  for r in runs if r.output_length_mismatches]
    return lines + ([*errors, *mismatches, ""] if errors or mismatches else [])


def _knee_section(results: TraceResults) -> list[str]:
    if not results.knee_sweep:
        return []
    found = (f"the knee is speed {results.knee:g}" if results.knee is not None
             else "no speed of the sweep reached it")
    return [
        "## p2c speed sweep",
        "",
        f"Each step replays --knee-window wall seconds of the trace at that speed; light load is the slowest. "
        f"The knee is the first speed where p2c's TTFT p90 exceeds {results.knee_factor:g}× light load: {found}.",
        "",
        *_table(["speed", *_POLICY_HEADER[1:]],
                [[f"{r.speed:g}", *row[1:]] for r, row in zip(results.knee_sweep, _policy_rows(results.knee_sweep),
                                                              strict=True)]),
        "",
    ]


def render_markdown(results: TraceResults, plot_files: Sequence[str] = ()) -> str:
    mode = "quick (smoke test sizes: not representative)" if results.quick else "bounded run"
    lines = [
        "# fleetgate trace replay",
        "",
        f"Run {results.started_at}, {mode}. Written by `fleetgate bench trace`; raw numbers in `latest.json`. "
        "TTFT is the client's (send to first token); cache hit is the engine's cached prompt tokens over all "
        "prompt tokens (the responses' usage); predicted hit is the routers' predicted cached tokens over the "
        "same; load spread is the busiest replica's mean queue (running + waiting, sampled from the registry "
        "every 0.5 s) over the fleet's mean; router CPU is all router processes' CPU time over the run (after "
        "one warm-up request each) per request and per streamed token, so it holds streaming as well as routing.",
        "",
        "## Setup",
        "",
        *_setup_section(results),
        "",
    ]
    for speed in results.speeds:
        lines += [f"## Targets at speed {speed:g}", "",
                  *_table(["target", "measured", "verdict"],
                          [[r.target, r.measured, r.verdict] for r in target_rows(
                              results.runs, speed, results.knee, [s.speed for s in results.knee_sweep])]),
                  ""]
    for speed in results.speeds:
        lines += _speed_section(results, speed)
    lines += _knee_section(results)
    if plot_files:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plot_files] + [""]
    if results.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in results.notes] + [""]
    return "\n".join(lines)
