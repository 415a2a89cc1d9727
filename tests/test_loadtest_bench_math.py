"""The benchmark's numbers: percentiles, run summaries, the per-request / per-token CPU split, the report's
derived values and met/missed verdicts, the results JSON round trip, and the stream parser's token counts."""

from __future__ import annotations

import math

import orjson
import pytest

from fleetgate.loadtest.bench import configs
from fleetgate.loadtest.bench.report import (
    MET,
    MISSED,
    NOT_MEASURED,
    added_ttft,
    cores_busy,
    render_markdown,
    target_rows,
    verdict,
)
from fleetgate.loadtest.bench.results import FLEETGATE, GRPC_DIRECT, LITELLM, VLLM_SERVER, BenchResults, Measurement
from fleetgate.loadtest.bench.run import parse_parts
from fleetgate.loadtest.bench.stats import (
    CpuCostSplit,
    RequestRecord,
    RunSummary,
    percentile,
    ratio,
    split_cpu_cost,
    summarize,
)
from fleetgate.loadtest.streaming import StreamParser, read_stream

# -- percentiles and summaries ------------------------------------------------------------


def test_percentile_interpolates_linearly_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_percentile_matches_numpy_default() -> None:
    numpy = pytest.importorskip("numpy")
    values = [0.3, 9.1, 2.2, 5.5, 1.0, 7.7, 3.3]
    for q in (1, 25, 50, 90, 99):
        assert percentile(values, q) == pytest.approx(float(numpy.percentile(values, q)))


def test_summary_counts_only_successful_requests() -> None:
    records = [
        RequestRecord(started=0.0, ended=1.0, first_token=0.1, tokens=10),
        RequestRecord(started=0.0, ended=2.0, first_token=0.3, tokens=20),
        RequestRecord(started=0.5, ended=0.6, error="HTTP 503"),
    ]
    summary = summarize(records, wall_seconds=2.0, cpu_seconds=0.006)
    assert (summary.requests, summary.errors, summary.tokens) == (2, 1, 30)
    assert summary.ttft_p50 == pytest.approx(0.2)
    assert summary.latency_p50 == pytest.approx(1.5)
    assert summary.tokens_per_second == pytest.approx(15.0)
    assert summary.requests_per_second == pytest.approx(1.0)
    assert summary.cpu_per_token == pytest.approx(0.0002)
    assert summary.cpu_per_request == pytest.approx(0.003)
    assert summarize(records, 2.0).cpu_per_token is None


def _summary(requests: int, tokens: int, cpu: float | None, ttft_p50: float = 0.01, ttft_p99: float = 0.02,
             wall: float = 10.0) -> RunSummary:
    return RunSummary(requests=requests, errors=0, tokens=tokens, wall_seconds=wall, ttft_p50=ttft_p50,
                      ttft_p99=ttft_p99, latency_p50=0.05, cpu_seconds=cpu)


def test_cpu_split_recovers_per_request_and_per_token_cost() -> None:
    per_request, per_token = 400e-6, 30e-6
    short = _summary(1000, 1000, cpu=1000 * per_request + 1000 * per_token)
    long = _summary(200, 200 * 128, cpu=200 * per_request + 200 * 128 * per_token)
    split = split_cpu_cost(short, long)
    assert split is not None
    assert split.per_request == pytest.approx(per_request)
    assert split.per_token == pytest.approx(per_token)
    # Same output length cannot separate the two; no CPU measured gives nothing.
    assert split_cpu_cost(short, short) is None
    assert split_cpu_cost(_summary(10, 10, None), long) is None


def test_ratio_is_nan_without_a_denominator() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))


# -- report ------------------------------------------------------------------------------------


def _results() -> BenchResults:
    results = BenchResults(machine={"cpu_model": "Test CPU", "usable_cores": 2, "logical_cores": 2, "ram_gib": 24},
                           quick=False, started_at="2026-01-01T00:00:00+00:00")
    add = results.add
    add(Measurement("a", GRPC_DIRECT, 1, 32, _summary(100, 3200, 0.1, ttft_p50=0.0010, ttft_p99=0.0030)))
    add(Measurement("a", FLEETGATE, 1, 32, _summary(100, 3200, 0.2, ttft_p50=0.0015, ttft_p99=0.0090)))
    add(Measurement("a", LITELLM, 1, 32, _summary(100, 3200, 0.9, ttft_p50=0.0215, ttft_p99=0.0490)))
    # 19 busy core-seconds of 2 cores × 10 s: saturated.
    add(Measurement("a", GRPC_DIRECT, 64, 32, _summary(1000, 32000, 1.0, ttft_p50=0.010, ttft_p99=0.030),
                    cpu={"machine": 19.0}))
    add(Measurement("a", FLEETGATE, 64, 32, _summary(1000, 32000, 2.0, ttft_p50=0.0105, ttft_p99=0.032)))
    add(Measurement("a", FLEETGATE, 64, 1, _summary(1000, 1000, 0.5), label="CPU split: 1-token outputs"))
    results.cpu_splits[FLEETGATE] = CpuCostSplit(per_request=0.0008, per_token=0.00006)
    add(Measurement("b", FLEETGATE, 16, 64, _summary(96, 6000, 1.0, wall=100.0)))
    add(Measurement("b", VLLM_SERVER, 16, 64, _summary(96, 6000, 5.0, wall=97.0)))
    add(Measurement("b", LITELLM, 16, 64, _summary(96, 6000, 2.0, wall=110.0)))
    return results


def test_added_ttft_is_the_difference_of_percentiles_per_concurrency() -> None:
    added = {a.concurrency: a for a in added_ttft(_results(), FLEETGATE, GRPC_DIRECT)}
    assert set(added) == {1, 64}  # the CPU-split run (labelled) is not a main run
    assert added[1].p50 == pytest.approx(0.0005)
    assert added[1].p99 == pytest.approx(0.0060)
    assert added[64].p50 == pytest.approx(0.0005)
    litellm = added_ttft(_results(), LITELLM, FLEETGATE)
    assert [(a.concurrency, round(a.p50, 6)) for a in litellm] == [(1, 0.02)]


def test_target_verdicts() -> None:
    rows = {row.target: row for row in target_rows(_results())}
    assert rows["router adds ≤ 1 ms TTFT p50 (concurrency 1)"].verdict == MET
    assert rows["router adds ≤ 1 ms TTFT p50 (concurrency 1)"].measured == "0.50 ms"
    assert rows["router adds ≤ 5 ms TTFT p99 (concurrency 1)"].verdict == MISSED
    # Saturated cores: a verdict there is not meaningful, whichever way it would go.
    assert rows["router adds ≤ 5 ms TTFT p99 (concurrency 64)"].verdict == (
        "not meaningful (cores saturated, 95% busy: queueing, see CPU)")
    assert rows["router CPU ≤ 50 µs per streamed token"].verdict == MISSED
    assert rows["router CPU ≤ 50 µs per streamed token"].measured == "60.0 µs"
    assert rows["router CPU ≤ 1 ms per request"].verdict == MET
    # 6000 tokens in 100 s vs 97 s: 0.97× vLLM's server; LiteLLM took 110 s.
    assert rows["end-to-end tokens/s ≥ 0.95× vLLM's own server"].measured == "0.97×"
    assert rows["end-to-end tokens/s ≥ 0.95× vLLM's own server"].verdict == MET
    assert rows["end-to-end tokens/s better than LiteLLM's proxy"].verdict == MET


def test_unmeasured_targets_say_so() -> None:
    empty = BenchResults(machine={}, quick=True, started_at="now")
    verdicts = {row.target: row.verdict for row in target_rows(empty)}
    assert set(verdicts.values()) == {NOT_MEASURED}


def test_cores_busy_is_machine_cpu_over_wall_time_and_cores() -> None:
    run = Measurement("a", GRPC_DIRECT, 1, 32, _summary(10, 320, 0.1, wall=4.0), cpu={"machine": 6.0})
    assert cores_busy(run, 2) == pytest.approx(0.75)
    assert cores_busy(run, None) is None
    assert cores_busy(Measurement("a", GRPC_DIRECT, 1, 32, _summary(10, 320, 0.1)), 2) is None


def test_a_negative_added_ttft_is_not_meaningful_never_met() -> None:
    results = BenchResults(machine={"usable_cores": 2}, quick=False, started_at="now")
    results.add(Measurement("a", GRPC_DIRECT, 256, 32, _summary(1000, 32000, 1.0, ttft_p50=0.300, ttft_p99=0.5)))
    results.add(Measurement("a", FLEETGATE, 256, 32, _summary(1000, 32000, 2.0, ttft_p50=0.141, ttft_p99=0.6)))
    rows = {row.target: row.verdict for row in target_rows(results)}
    assert rows["router adds ≤ 1 ms TTFT p50 (concurrency 256)"] == "not meaningful (negative difference: noise)"
    assert rows["router adds ≤ 5 ms TTFT p99 (concurrency 256)"] == MISSED


def test_verdict_edges() -> None:
    assert verdict(1.0, 1.0) == MET
    assert verdict(1.0, 1.0, at_most=False, strict=True) == MISSED
    assert verdict(math.nan, 1.0) == NOT_MEASURED
    assert verdict(None, 1.0) == NOT_MEASURED


def test_markdown_report_carries_machine_tables_and_plots() -> None:
    text = render_markdown(_results(), ["overhead_ttft.png"])
    assert "Test CPU — 2 usable cores" in text
    assert "## (a) Router overhead" in text
    assert "**0.50 ms / 6.00 ms**" in text  # router adds at concurrency 1
    assert "| fleetgate | 800.0 µs | 60.0 µs |" in text
    assert "## (b) End to end" in text
    assert "![overhead_ttft.png](overhead_ttft.png)" in text
    assert "## (c)" not in text  # part c did not run


def test_results_json_round_trip() -> None:
    results = _results()
    results.add(Measurement("c", FLEETGATE, 8, 32, _summary(0, 0, None, ttft_p50=math.nan, ttft_p99=math.nan),
                            label="1 router × 1 replica"))
    text = results.to_json()
    assert "NaN" not in text  # strict JSON
    again = BenchResults.from_json(text)
    assert again.cpu_splits == results.cpu_splits
    assert len(again.measurements) == len(results.measurements)
    assert again.measurements[0] == results.measurements[0]
    assert math.isnan(again.measurements[-1].summary.ttft_p50)
    assert render_markdown(again) == render_markdown(results)


# -- command line and configs --------------------------------------------------------------------


def test_parse_parts() -> None:
    assert parse_parts("c,a") == ["a", "c"]
    assert parse_parts("a,b,c,d") == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        parse_parts("a,x")
    with pytest.raises(ValueError):
        parse_parts("d")  # LiteLLM is measured within a and b


def test_engine_args_become_api_server_flags() -> None:
    flags = configs.engine_flags({"dtype": "float32", "enforce_eager": True, "max_model_len": 2048,
                                  "enable_prefix_caching": False})
    assert flags == ["--dtype", "float32", "--enforce-eager", "--max-model-len", "2048", "--no-enable-prefix-caching"]


def test_vllm_cluster_uses_the_shipped_model_settings() -> None:
    model = configs.shipped_vllm_model()
    cluster = configs.vllm_cluster(model)
    (served,) = cluster["models"]
    assert served["name"] == configs.VLLM_MODEL and served["replicas"] == 1
    assert served["engine_args"] == model.engine_args
    assert served["env"] == model.env


# -- stream parsing (shared by Locust and the load generator) ---------------------------------------


def _sse(payload: dict, event: str | None = None) -> list[bytes]:
    lines = [f"event: {event}\n".encode()] if event else []
    return lines + [b"data: " + orjson.dumps(payload) + b"\n", b"\n"]


def test_chat_stream_tokens_and_reported_usage() -> None:
    lines = [
        *_sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        *_sse({"choices": [{"index": 0, "delta": {"content": "Hello"}}]}),
        *_sse({"choices": [{"index": 0, "delta": {"content": " world"}, "finish_reason": "stop"}]}),
        *_sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}}),
        b"data: [DONE]\n",
    ]
    result = read_stream("chat", lines, started_at=0.0)
    assert len(result.token_times) == 2
    assert result.completion_tokens == 3  # the server's usage wins over the chunks seen
    assert result.finished and result.error is None


def test_chat_stream_without_done_is_unfinished_and_error_is_reported() -> None:
    parser = StreamParser("chat", started_at=0.0)
    for line in _sse({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}):
        parser.feed(line)
    assert not parser.result.finished and parser.result.completion_tokens == 1
    parser.feed(b"data: " + orjson.dumps({"error": {"message": "replica died", "type": "server_error"}}))
    parser.feed("data: [DONE]")
    assert parser.result.error == "replica died" and not parser.result.finished


def test_messages_and_responses_streams() -> None:
    messages = [
        *_sse({"type": "message_start", "message": {}}, "message_start"),
        *_sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
              "content_block_delta"),
        *_sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
              "message_delta"),
        *_sse({"type": "message_stop"}, "message_stop"),
    ]
    result = read_stream("messages", messages, started_at=0.0)
    assert result.finished and result.completion_tokens == 1 and len(result.token_times) == 1

    responses = [
        *_sse({"type": "response.output_text.delta", "delta": "Hi"}, "response.output_text.delta"),
        *_sse({"type": "response.output_text.delta", "delta": "!"}, "response.output_text.delta"),
        *_sse({"type": "response.completed", "response": {"id": "resp_1", "usage": {"output_tokens": 2}}},
              "response.completed"),
    ]
    result = read_stream("responses", responses, started_at=0.0)
    assert result.finished and result.completion_tokens == 2 and result.last_payload["id"] == "resp_1"
