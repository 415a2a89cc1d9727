"""``fleetgate bench trace``: the replayer on a tiny trace (real routers, replicas, Redis), and its pure parts.

The end-to-end test replays 20 requests sharing four prefixes through two routers to
two sim replicas, once per policy, and checks what a user of the command sees: one
JSON line per policy with the fields, every prompt served at its trace length with
its trace output length, cache hits where prefixes are shared, no errors, the
report, JSON and plot written.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from fleetgate.loadtest.bench.report import MET, NOT_MEASURED
from fleetgate.loadtest.bench.trace import mooncake, sampling
from fleetgate.loadtest.bench.trace.knee import knee_speed
from fleetgate.loadtest.bench.trace.prompts import ROLE_MARKER_TOKENS, prompt_text
from fleetgate.loadtest.bench.trace.replay import TraceRecord
from fleetgate.loadtest.bench.trace.run import accepted_policy
from fleetgate.loadtest.bench.trace.summary import PolicyResult, RunContext, summarize
from fleetgate.loadtest.bench.trace.verdicts import target_rows
from fleetgate.replicas.sim_engine.tokens import split_tokens

REPO = Path(__file__).resolve().parent.parent
JSON_FIELDS = {"policy", "speed", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99", "output_tok_s", "cache_hit_ratio",
               "predicted_hit_ratio", "load_spread", "router_cpu_us_per_request", "errors"}


def _tiny_trace(path: Path) -> list[dict[str, int | list[int]]]:
    """20 requests 150 ms apart: four 3-block prefixes taking turns, each request with two blocks of its own."""
    rows = []
    for k in range(20):
        prefix = [k % 4 * 10 + j for j in range(3)]
        rows.append({"timestamp": k * 150, "input_length": 4 * 512 + 37 * (k % 7) + 1,
                     "output_length": 3 + k % 9, "hash_ids": [*prefix, 100 + 2 * k, 101 + 2 * k]})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


# -- the replayer, end to end ---------------------------------------------------------------------


def test_replay_of_a_tiny_trace_reports_each_policy(tmp_path: Path) -> None:
    trace = tmp_path / "tiny.jsonl"
    rows = _tiny_trace(trace)
    policies = ["p2c"] + (["prefix"] if accepted_policy("prefix") else [])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "fleetgate.launcher.cli", "bench", "trace", "--trace", str(trace), "--replicas", "2",
         "--routers", "2", "--policies", ",".join(policies), "--out", str(out), "--work-dir", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [line["policy"] for line in lines] == policies
    for line in lines:
        assert JSON_FIELDS <= set(line), line
        assert line["errors"] == 0 and line["requests"] == 20, line
        # Every prompt reached the engine at its trace length and streamed exactly its trace output length.
        assert line["prompt_tokens"] == sum(row["input_length"] for row in rows)  # type: ignore[misc]
        assert line["output_length_mismatches"] == 0
        # Each prefix comes back five times onto two replicas: some of it is read from the cache.
        assert line["cache_hit_ratio"] > 0
        assert line["ttft_ms_p50"] > 0 and line["output_tok_s"] > 0 and line["router_cpu_us_per_request"] > 0
        assert line["load_spread"] >= 1.0
    if "prefix" in policies:
        assert lines[1]["predicted_hit_ratio"] > 0
    for name in ("latest.md", "latest.json", "trace_speed_1.png"):
        assert (out / name).stat().st_size > 0
    report = (out / "latest.md").read_text()
    assert "## Targets at speed 1" in report and "| p2c |" in report
    assert [run["policy"] for run in json.loads((out / "latest.json").read_text())["runs"]] == policies


# -- the pure parts --------------------------------------------------------------------------------


def _request(index: int, length: int, ids: tuple[int, ...]) -> mooncake.TraceRequest:
    return mooncake.TraceRequest(index, 0.0, length, 1, ids)


def test_prompts_share_text_where_hash_ids_are_shared_and_have_the_trace_length() -> None:
    first = prompt_text(_request(0, 3 * 512, (1, 2, 3)))
    second = prompt_text(_request(1, 2 * 512 + 100, (1, 2, 9)))
    other = prompt_text(_request(2, 1000, (7, 8)))
    # The sim's tokens: a role marker, then a word each.
    assert len(split_tokens(first)) + ROLE_MARKER_TOKENS == 3 * 512
    assert len(split_tokens(second)) + ROLE_MARKER_TOKENS == 2 * 512 + 100
    shared = len("".join(split_tokens(first)[:1024]))
    assert first[:shared] == second[:shared]
    assert split_tokens(first)[1024:1100] != split_tokens(second)[1024:1100]
    assert split_tokens(other)[:50] != split_tokens(first)[:50]
    # Ids covering too little are padded; a repeat is the same text.
    assert len(split_tokens(prompt_text(_request(3, 2000, (1,))))) + ROLE_MARKER_TOKENS == 2000
    assert prompt_text(_request(5, 3 * 512, (1, 2, 3))) == first


def test_window_bounds_by_trace_time_and_count_and_shifts_to_zero(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    _tiny_trace(path)
    requests = mooncake.read_trace(path)
    assert len(requests) == 20
    window = mooncake.window(requests, start_s=0.3, duration_s=0.6)
    assert [r.index for r in window] == [2, 3, 4, 5]
    assert window[0].arrival_s == 0.0
    assert len(mooncake.window(requests, limit=5)) == 5
    shape = mooncake.shape(requests)
    assert shape.longest_prompt == 4 * 512 + 37 * 6 + 1
    # 4 prefixes × 3 blocks seen first, then repeated by the 16 later requests: 48 of 100 blocks.
    assert shape.reusable_block_share == pytest.approx(0.48)


def test_knee_is_the_first_speed_past_four_times_light_load() -> None:
    assert knee_speed([(0.5, 100.0), (1, 150.0), (2, 390.0), (4, 450.0), (8, 2000.0)]) == 4
    assert knee_speed([(1, 100.0), (2, 200.0)]) is None
    assert knee_speed([(1, 100.0)]) is None


def test_load_spread_and_router_counters() -> None:
    assert sampling.load_spread({"a": 3.0, "b": 1.0}) == pytest.approx(1.5)
    assert math.isnan(sampling.load_spread({"a": 0.0, "b": 0.0}))
    registry = CollectorRegistry()
    predicted = Counter("fleetgate_prefix_predicted_cached_tokens", "", ["model", "replica"], registry=registry)
    predicted.labels(model="sim", replica="r1").inc(100)
    predicted.labels(model="sim", replica="r2").inc(20)
    Counter("fleetgate_routing_decisions", "", ["model", "policy", "reason"], registry=registry).labels(
        model="sim", policy="prefix", reason="hit").inc(3)
    text = generate_latest(registry).decode()
    assert sampling.counter_totals([text, text], sampling.PREDICTED_CACHED_TOKENS) == {"": 240.0}
    assert sampling.counter_totals([text], sampling.ROUTING_DECISIONS, by_label="reason") == {"hit": 3.0}


def test_summary_reports_the_models_time_on_a_dilated_clock() -> None:
    records = [TraceRecord(index=i, router=0, due=0.0, started=0.0, ended=2.0, first_token=0.4 * (i + 1),
                           tokens=10, prompt_tokens=1000, cached_tokens=250 * i, expected_tokens=10 + i)
               for i in range(2)]
    records.append(TraceRecord(index=2, router=1, due=0.0, started=0.1, ended=0.2, error="HTTP 503"))
    ctx = RunContext(policy="prefix", speed=2.0, dialect="chat", replicas=2, routers=2, router_cpu_seconds=0.03,
                     machine_busy_seconds=3.0, cores=2, predicted_cached_tokens=200.0,
                     mean_queue_by_replica={"a": 2.0, "b": 1.0}, load_spread=4 / 3, time_scale=4.0)
    result = summarize(records, wall_seconds=2.0, ctx=ctx)
    # TTFT 0.4 s and 0.8 s of wall time on a 4x clock: 100 and 200 ms of the model's.
    assert result.ttft_ms_p50 == pytest.approx(150.0)
    assert result.output_tok_s == pytest.approx(20 * 4 / 2.0)
    assert (result.requests, result.errors, result.first_error) == (2, 1, "HTTP 503")
    assert result.cache_hit_ratio == pytest.approx(0.125)
    assert result.predicted_hit_ratio == pytest.approx(0.1)
    assert result.router_cpu_us_per_request == pytest.approx(10_000.0)
    assert result.cores_busy == pytest.approx(0.75)
    assert result.output_length_mismatches == 1


def _result(policy: str, ttft_p50: float, hit: float, *, busy: float = 0.5, cpu_us: float = 600.0,
            prompt: float = 40_000.0) -> PolicyResult:
    return PolicyResult(policy=policy, speed=2.0, dialect="chat", replicas=8, routers=2, requests=100, errors=0,
                        ttft_ms_p50=ttft_p50, ttft_ms_p90=2 * ttft_p50, ttft_ms_p99=3 * ttft_p50, output_tok_s=500.0,
                        cache_hit_ratio=hit, predicted_hit_ratio=hit, load_spread=1.2,
                        router_cpu_us_per_request=cpu_us, router_cpu_us_per_output_token=5.0, prompt_tokens=1,
                        mean_prompt_tokens=prompt, wall_s=60.0, time_scale=1.0, cores_busy=busy,
                        send_lateness_ms_p99=1.0)


def test_targets_are_met_missed_or_not_meaningful() -> None:
    results = [_result("p2c", 1000.0, 0.1), _result("prefix", 150.0, 0.58), _result("oracle", 140.0, 0.6)]
    rows = {row.target.split(" (")[0]: row.verdict for row in target_rows(results, 2.0, knee=2.0)}
    assert rows == {
        "prefix TTFT p50 ≥ 5× lower than p2c": MET,
        "prefix TTFT p50 within 1.2× of the oracle": MET,
        "prefix cache hit ratio within 5 points of the oracle": MET,
        "prefix: no replica's mean queue above 1.5× the fleet mean": MET,
        "prefix: router CPU ≤ 1 ms per request at a 32k-token prompt": MET,
    }
    # Saturated cores, a prefix policy "above" the oracle, CPU on short prompts: not meaningful, never met.
    results = [_result("p2c", 1000.0, 0.1, busy=0.97), _result("prefix", 150.0, 0.7, prompt=8000.0),
               _result("oracle", 140.0, 0.6)]
    rows = {row.target.split(" (")[0]: row.verdict for row in target_rows(results, 2.0, knee=None)}
    assert rows["prefix TTFT p50 ≥ 5× lower than p2c"].startswith("not meaningful (cores saturated")
    assert rows["prefix cache hit ratio within 5 points of the oracle"] == (
        "not meaningful (negative difference: noise)")
    assert rows["prefix: router CPU ≤ 1 ms per request at a 32k-token prompt"] == (
        "not meaningful (prompts shorter than 32k tokens)")
    assert {row.verdict for row in target_rows(results[:1], 2.0, knee=None)} == {NOT_MEASURED}
