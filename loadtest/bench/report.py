"""The benchmark's markdown report: machine, targets (met / missed / not meaningful, never a failure), one table a part.

Pure functions of ``BenchResults``: the derived numbers (TTFT a hop adds, CPU per
token and per request, throughput ratios) are computed here and unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fleetgate.loadtest.bench.cpu import MACHINE
from fleetgate.loadtest.bench.results import (
    BARE_RELAY,
    FLEETGATE,
    GRPC_DIRECT,
    LITELLM,
    VLLM_SERVER,
    BenchResults,
    Measurement,
)
from fleetgate.loadtest.bench.stats import ratio

# Targets from the load-testing issue (printed next to the numbers, never asserted).
ROUTER_TTFT_P50_ADDED_MAX = 0.001
ROUTER_TTFT_P99_ADDED_MAX = 0.005
ROUTER_CPU_PER_TOKEN_MAX = 50e-6
ROUTER_CPU_PER_REQUEST_MAX = 1e-3
E2E_THROUGHPUT_VS_VLLM_MIN = 0.95

MET, MISSED, NOT_MEASURED, NOT_MEANINGFUL = "met", "missed", "not measured", "not meaningful"
# Above this share of all cores busy, latency is mostly waiting for a core.
SATURATED_BUSY = 0.9


def ms(seconds: float | None) -> str:
    return "–" if seconds is None or math.isnan(seconds) else f"{seconds * 1000:.2f} ms"


def us(seconds: float | None) -> str:
    return "–" if seconds is None or math.isnan(seconds) else f"{seconds * 1e6:.1f} µs"


def times(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}×"


def cores_busy(m: Measurement, cores: int | None) -> float | None:
    """The share of all ``cores`` that were busy (anything on the machine) during ``m``'s window."""
    busy = m.cpu.get(MACHINE)
    if busy is None or not cores or m.summary.wall_seconds <= 0:
        return None
    return busy / (m.summary.wall_seconds * cores)


def percent(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value * 100:.0f}%"


def verdict(value: float | None, limit: float, *, at_most: bool = True, strict: bool = False) -> str:
    """MET when ``value`` is at most (or at least) ``limit``; ``strict`` excludes equality."""
    if value is None or math.isnan(value):
        return NOT_MEASURED
    if strict and value == limit:
        return MISSED
    return MET if (value <= limit if at_most else value >= limit) else MISSED


def guarded_verdict(value: float | None, limit: float, *, at_most: bool = True, strict: bool = False,
                    busy: float | None = None, difference: bool = False) -> str:
    """``verdict``, unless the measurement cannot carry one: NOT_MEANINGFUL when the cores were saturated
    (``busy``, the share of all cores busy, at least ``SATURATED_BUSY``: latency is then queueing for a
    core) or when ``value`` is a ``difference`` that cannot be negative and came out negative (noise)."""
    if value is None or math.isnan(value):
        return NOT_MEASURED
    if busy is not None and busy >= SATURATED_BUSY:
        return f"{NOT_MEANINGFUL} (cores saturated, {percent(busy)} busy: queueing, see CPU)"
    if difference and value < 0:
        return f"{NOT_MEANINGFUL} (negative difference: noise)"
    return verdict(value, limit, at_most=at_most, strict=strict)


@dataclass(frozen=True)
class AddedLatency:
    """TTFT a hop adds over its baseline at one concurrency (differences of percentiles)."""

    concurrency: int
    p50: float
    p99: float


def added_ttft(results: BenchResults, target: str, baseline: str, part: str = "a") -> list[AddedLatency]:
    """``target``'s TTFT p50 / p99 minus ``baseline``'s, at every concurrency both were measured (main runs only)."""
    added = []
    for row in results.select(part, target, label=""):
        base = results.find(part, baseline, row.concurrency, label="")
        if base is not None:
            added.append(AddedLatency(row.concurrency, row.summary.ttft_p50 - base.summary.ttft_p50,
                                      row.summary.ttft_p99 - base.summary.ttft_p99))
    return added


@dataclass(frozen=True)
class TargetRow:
    target: str
    measured: str
    verdict: str


def _busiest(results: BenchResults, concurrency: int) -> float | None:
    """The highest share of cores busy among the comparison's runs at ``concurrency``."""
    cores = results.machine.get("usable_cores")
    busy = [cores_busy(m, cores) for t in (GRPC_DIRECT, FLEETGATE)
            if (m := results.find("a", t, concurrency, label="")) is not None]
    return max((b for b in busy if b is not None), default=None)


def target_rows(results: BenchResults) -> list[TargetRow]:
    """Each target with the measured value and met / missed / not meaningful."""
    rows: list[TargetRow] = []
    for added in added_ttft(results, FLEETGATE, GRPC_DIRECT):
        busy = _busiest(results, added.concurrency)
        rows.append(TargetRow(f"router adds ≤ 1 ms TTFT p50 (concurrency {added.concurrency})", ms(added.p50),
                              guarded_verdict(added.p50, ROUTER_TTFT_P50_ADDED_MAX, busy=busy, difference=True)))
        rows.append(TargetRow(f"router adds ≤ 5 ms TTFT p99 (concurrency {added.concurrency})", ms(added.p99),
                              guarded_verdict(added.p99, ROUTER_TTFT_P99_ADDED_MAX, busy=busy, difference=True)))
    split = results.cpu_splits.get(FLEETGATE)
    rows.append(TargetRow("router CPU ≤ 50 µs per streamed token", us(split.per_token if split else None),
                          verdict(split.per_token if split else None, ROUTER_CPU_PER_TOKEN_MAX)))
    rows.append(TargetRow("router CPU ≤ 1 ms per request", us(split.per_request if split else None),
                          verdict(split.per_request if split else None, ROUTER_CPU_PER_REQUEST_MAX)))
    fleetgate = results.find("b", FLEETGATE)
    vllm = results.find("b", VLLM_SERVER)
    litellm = results.find("b", LITELLM)
    if fleetgate and vllm:
        vs_vllm = ratio(fleetgate.summary.tokens_per_second, vllm.summary.tokens_per_second)
        rows.append(TargetRow("end-to-end tokens/s ≥ 0.95× vLLM's own server", times(vs_vllm),
                              verdict(vs_vllm, E2E_THROUGHPUT_VS_VLLM_MIN, at_most=False)))
    else:
        rows.append(TargetRow("end-to-end tokens/s ≥ 0.95× vLLM's own server", "–", NOT_MEASURED))
    if fleetgate and litellm:
        vs_litellm = ratio(fleetgate.summary.tokens_per_second, litellm.summary.tokens_per_second)
        rows.append(TargetRow("end-to-end tokens/s better than LiteLLM's proxy", times(vs_litellm),
                              verdict(vs_litellm, 1.0, at_most=False, strict=True)))
    else:
        rows.append(TargetRow("end-to-end tokens/s better than LiteLLM's proxy", "–", NOT_MEASURED))
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _errors(m: Measurement) -> str:
    return str(m.summary.errors) if m.summary.errors else "0"


def _machine_section(results: BenchResults) -> list[str]:
    machine = results.machine
    packages = ", ".join(f"{k} {v}" for k, v in (machine.get("packages") or {}).items())
    return [
        f"- CPU: {machine.get('cpu_model')} — {machine.get('usable_cores')} usable cores "
        f"({machine.get('logical_cores')} logical), {machine.get('ram_gib')} GiB RAM, no GPU",
        f"- OS: {machine.get('os')}, Python {machine.get('python')}; {packages}",
        f"- load average when the run began: {machine.get('load_average_at_start')}",
        "- everything (load generator, router, replicas, engines, LiteLLM) shares these cores",
    ]


def _pair(first: str, second: str) -> str:
    return f"{first} / {second}"


def _overhead_section(results: BenchResults) -> list[str]:
    directs = results.select("a", GRPC_DIRECT, label="")
    if not directs:
        return []
    added_by_c = {a.concurrency: a for a in added_ttft(results, FLEETGATE, GRPC_DIRECT)}
    litellm_by_c = {a.concurrency: a for a in added_ttft(results, LITELLM, FLEETGATE)}
    http_paths = (BARE_RELAY, FLEETGATE, LITELLM)
    latency_rows, cpu_rows, throughput_rows = [], [], []
    for direct in directs:
        c = direct.concurrency
        row = {t: results.find("a", t, c, label="") for t in http_paths}
        ran = [direct, *(m for m in row.values() if m)]

        def ttft(m: Measurement | None) -> str:
            return _pair(ms(m.summary.ttft_p50), ms(m.summary.ttft_p99)) if m else "–"

        def cpu(m: Measurement | None) -> str:
            return _pair(us(m.summary.cpu_per_token), us(m.summary.cpu_per_request)) if m else "–"

        added, litellm_added = added_by_c.get(c), litellm_by_c.get(c)
        latency_rows.append([
            str(c), ttft(direct), ttft(row[BARE_RELAY]), ttft(row[FLEETGATE]),
            f"**{_pair(ms(added.p50), ms(added.p99))}**" if added else "–",
            ttft(row[LITELLM]), _pair(ms(litellm_added.p50), ms(litellm_added.p99)) if litellm_added else "–",
        ])
        cpu_rows.append([str(c), *(cpu(row[t]) for t in http_paths)])
        cores = results.machine.get("usable_cores")
        throughput_rows.append([str(c), " / ".join(f"{m.summary.tokens_per_second:.0f}" for m in ran),
                                " / ".join(percent(cores_busy(m, cores)) for m in ran),
                                " / ".join(_errors(m) for m in ran), " / ".join(m.target for m in ran)])
    lines = [
        "## (a) Router overhead (zero-latency sim replica)",
        "",
        f"Streaming chat, {directs[0].max_tokens} tokens per request, the same requests on every path: straight to "
        "the replica over gRPC (baseline); through a bare uvicorn + Starlette + grpc.aio relay with no logic "
        "(the floor of the router's stack); through fleetgate's router; through LiteLLM's proxy in front of that "
        "router. With every part on the same few cores, concurrency 64 and 256 saturate them: TTFT there is "
        "mostly CPU queueing and differences of percentiles are noisy (they can even come out negative); the "
        "CPU columns hold.",
        "",
        "TTFT, p50 / p99:",
        "",
    ]
    lines += _table(["concurrency", "gRPC direct", "bare relay", "fleetgate", "router adds", "LiteLLM",
                     "LiteLLM adds (over fleetgate)"], latency_rows)
    lines += ["", "CPU of the hop's own process per streamed token / per request (all its user + system time "
              "over the run, divided):", ""]
    lines += _table(["concurrency", "bare relay", "fleetgate router", "LiteLLM proxy"], cpu_rows)
    lines += ["", "Throughput, how busy the machine's cores were (everything on it), and errors:", ""]
    lines += _table(["concurrency", "tokens/s", "cores busy", "errors", "paths"], throughput_rows)
    if results.cpu_splits:
        lines += ["", "CPU per request and per streamed token, fitted from a 1-token-output run and a long-output "
                  "run at the same concurrency (cpu = per_request × requests + per_token × tokens):", ""]
        lines += _table(["process", "CPU per request", "CPU per streamed token"],
                        [[name, us(split.per_request), us(split.per_token)]
                         for name, split in results.cpu_splits.items()])
    return lines + [""]


def _end_to_end_section(results: BenchResults) -> list[str]:
    measured = results.select("b")
    if not measured:
        return []
    vllm = results.find("b", VLLM_SERVER)
    rows = []
    for m in measured:
        s = m.summary
        base = vllm.summary if vllm else None
        rows.append([
            m.target, f"{s.tokens_per_second:.1f}", ms(s.ttft_p50), ms(s.ttft_p99),
            times(ratio(s.tokens_per_second, base.tokens_per_second)) if base else "–",
            times(ratio(s.ttft_p50, base.ttft_p50)) if base else "–",
            times(ratio(s.ttft_p99, base.ttft_p99)) if base else "–",
            f"{s.requests}", _errors(m),
        ])
    sample = measured[0]
    lines = [
        "## (b) End to end on vLLM CPU (bundled SmolLM2-135M, float32, enforce_eager)",
        "",
        f"The same {sample.summary.requests + sample.summary.errors} greedy streaming chat requests "
        f"(≤ {sample.max_tokens} tokens) at concurrency {sample.concurrency}, one server at a time. "
        "Ratios are against vLLM's own OpenAI server.",
        "",
    ]
    return lines + _table(["server", "output tokens/s", "TTFT p50", "TTFT p99", "tokens/s ratio", "TTFT p50 ratio",
                           "TTFT p99 ratio", "requests", "errors"], rows) + [""]


def _scale_out_section(results: BenchResults) -> list[str]:
    measured = results.select("c")
    if not measured:
        return []
    base = measured[0].summary.tokens_per_second
    cores = results.machine.get("usable_cores")
    rows = [[m.label, f"{m.summary.tokens_per_second:.0f}", times(ratio(m.summary.tokens_per_second, base)),
             f"{m.summary.requests_per_second:.1f}", ms(m.summary.ttft_p50), ms(m.summary.ttft_p99),
             f"{m.cpu.get('routers') or 0:.2f} s", percent(cores_busy(m, cores)), _errors(m)] for m in measured]
    sample = measured[0]
    lines = [
        "## (c) Scale-out (sim replicas with realistic latency)",
        "",
        f"Streaming chat, {sample.max_tokens} tokens per request, concurrency {sample.concurrency} spread evenly over "
        "the routers. Speed-up is against the first row.",
        "",
    ]
    return lines + _table(["topology", "tokens/s", "speed-up", "requests/s", "TTFT p50", "TTFT p99",
                           "routers' CPU", "cores busy", "errors"], rows) + [""]


def render_markdown(results: BenchResults, plot_files: Sequence[str] = ()) -> str:
    """The whole report."""
    mode = "quick (smoke test sizes: not representative)" if results.quick else "full"
    lines = [
        "# fleetgate benchmark",
        "",
        f"Run {results.started_at}, mode: {mode}. Written by `fleetgate bench`; raw numbers in `latest.json`.",
        "",
        "## Machine",
        "",
        *_machine_section(results),
        "",
        "## Targets",
        "",
        *_table(["target", "measured", "verdict"], [[r.target, r.measured, r.verdict] for r in target_rows(results)]),
        "",
        *_overhead_section(results),
        *_end_to_end_section(results),
        *_scale_out_section(results),
    ]
    if plot_files:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plot_files] + [""]
    if results.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in results.notes] + [""]
    return "\n".join(lines)
