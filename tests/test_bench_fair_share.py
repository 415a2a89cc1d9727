"""``fleetgate bench fair-share``'s arithmetic and report (loadtest/bench/fair_share/report.py): which requests a
window counts, model time from dilated wall time, the verdicts, and a JSON round trip; and the cluster it builds
is a config fleetgate accepts, with the policy the benchmark compares left to the environment."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest

from fleetgate.core.config import FleetgateConfig
from fleetgate.loadtest.bench.fair_share.report import FairShareResults, KeyStats, Run, render_markdown
from fleetgate.loadtest.bench.fair_share.run import Shape, cluster_config
from fleetgate.loadtest.bench.stats import RequestRecord

SCALE = 3.0


def record(started: float, ttft: float, ended: float, tokens: int = 30, error: str | None = None) -> RequestRecord:
    return RequestRecord(started, ended, started + ttft, tokens, error)


def test_a_window_counts_ttft_of_requests_started_in_it_and_tokens_of_those_ended_in_it() -> None:
    records = [
        record(5.0, 0.3, 12.0, tokens=100),  # started before: no TTFT, its tokens count (ended inside)
        record(10.0, 0.3, 11.0),
        record(12.0, 0.6, 13.0),
        record(19.0, 0.9, 25.0, tokens=100),  # ended after: its TTFT counts, its tokens do not
        record(14.0, 0.1, 15.0, error="HTTP 429"),
    ]
    stats = KeyStats.of(records, (10.0, 20.0), SCALE)
    assert stats.requests == 3 and stats.errors == 1 and stats.first_error == "HTTP 429"
    assert stats.ttft_p50_ms == pytest.approx(600 / SCALE)  # model time
    assert stats.tokens_per_second == pytest.approx((100 + 30 + 30) / 10 * SCALE)
    assert stats.in_flight == pytest.approx((2 + 1 + 1 + 1 + 1) / 10)


def stats(ttft_ms: float, tokens_per_second: float, in_flight: float = 1.0) -> KeyStats:
    return KeyStats(requests=10, errors=0, ttft_p50_ms=ttft_ms, ttft_p90_ms=ttft_ms * 1.5,
                    tokens_per_second=tokens_per_second, in_flight=in_flight)


def results(fair_ttft_ms: float, fair_heavy: float, slots: float = 32.0) -> FairShareResults:
    made = FairShareResults(machine={}, started_at="now", quick=False, shape=asdict(Shape()), sim=Shape().sim(),
                            capacity=32)
    made.runs = [
        Run("idle", "fair_share", 20, stats(100, 50), None, 1.0, 0.0, 0.0, 0.1),
        Run("heavy_alone", "fair_share", 30, None, stats(math.nan, 1000), 32.0, 32.0, 32.0, 0.5),
        Run("fair_share", "fair_share", 60, stats(fair_ttft_ms, 40), stats(math.nan, fair_heavy), slots, 32.0,
            32.0, None),
        Run("fifo", "fifo", 60, stats(4000, 5), stats(math.nan, 1000), 32.0, 33.0, 33.0, 0.4),
    ]
    return made


def test_the_verdicts_compare_the_light_ttft_with_idle_and_the_heavy_throughput_with_its_own_alone() -> None:
    met = results(fair_ttft_ms=140, fair_heavy=0.95 * 1000 * (1 - 1 / 32)).verdicts()
    assert met["light_ttft"].startswith("met: ") and "1.40x" in met["light_ttft"]
    assert met["heavy_capacity"].startswith("met: ")
    missed = results(fair_ttft_ms=205, fair_heavy=700, slots=28.0).verdicts()
    assert missed["light_ttft"].startswith("missed: ") and "2.05x" in missed["light_ttft"]
    assert missed["heavy_capacity"].startswith("missed: ") and "88% busy" in missed["heavy_capacity"]


def test_results_round_trip_through_json_and_render_without_measurements_as_dashes() -> None:
    original = results(fair_ttft_ms=205, fair_heavy=990)
    again = FairShareResults.from_json(original.to_json())
    assert again.verdicts() == original.verdicts()
    assert "null" in original.to_json() and "NaN" not in original.to_json()
    report = render_markdown(again)
    assert "| fair_share | fair_share | 205 ms | 2.05x |" in report
    assert "| heavy_alone | fair_share | – | – |" in report


def test_the_benchmark_cluster_is_a_valid_config_with_auth_and_the_default_policy() -> None:
    config = FleetgateConfig.model_validate(cluster_config(Shape()))
    assert config.router.auth and config.router.admission.policy == "fair_share"  # fifo comes from the env
    sim = config.model("sim").sim
    assert sim.max_num_seqs == 16 and not sim.prefix_caching
    assert sim.itl_ms == 15.0 * 3 and sim.output_tokens > 384  # dilated; max_tokens decides the length
