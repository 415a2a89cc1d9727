"""``fleetgate bench elastic``'s arithmetic and report (loadtest/bench/elastic/report.py), and its fleets' configs."""

from __future__ import annotations

import argparse

import pytest

from fleetgate.core.config import FleetgateConfig
from fleetgate.loadtest.bench.elastic.options import add_elastic_arguments
from fleetgate.loadtest.bench.elastic.report import ElasticResults, fleet_stats, markdown, replica_seconds
from fleetgate.loadtest.bench.elastic.run import fleet_config, shape_from
from fleetgate.loadtest.bench.stats import RequestRecord


def test_replica_seconds_integrate_the_sampled_counts() -> None:
    assert replica_seconds([(0.0, 0), (10.0, 2), (15.0, 1)], end=20.0) == pytest.approx(2 * 5 + 1 * 5)
    assert replica_seconds([], end=5.0) == 0.0


def test_fleet_stats_and_the_side_by_side_report() -> None:
    records = [RequestRecord(1.0, 2.0, 1.5, 32), RequestRecord(2.0, 3.0, 2.1, 32), RequestRecord(2.0, 2.5, None, 0,
                                                                                                      "HTTP 503")]
    elastic = fleet_stats("elastic", records, [(0.0, 0), (1.0, 1), (1.0, 1), (4.0, 0)], 0.0, 6.0, burst_seconds=2.0)
    assert (elastic.requests, elastic.errors, elastic.peak_replicas) == (3, 1, 1)
    assert elastic.first_request_ttft_ms == pytest.approx(500)
    assert elastic.replica_seconds == pytest.approx(3.0)
    assert elastic.timeline == [(0.0, 0), (1.0, 1), (4.0, 0)]
    assert elastic.tokens_per_second == pytest.approx(32)
    fixed = fleet_stats("fixed", records[:2], [(0.0, 3)], 0.0, 6.0, burst_seconds=2.0)
    shape = {"replicas": 3, "max_num_seqs": 4, "streams": 12, "idle_before": 1, "burst": 2, "idle_after": 3,
             "idle_ttl": 4, "max_tokens": 32}
    text = markdown(ElasticResults(shape=shape, fleets=[elastic, fixed], machine={}, when="now"))
    assert "| elastic | 3 | 1 |" in text and "| fixed | 2 | 0 |" in text
    assert "17% of the fixed fleet's replica-seconds" in text


def test_the_two_fleets_are_valid_configs_of_the_same_size() -> None:
    parser = argparse.ArgumentParser()
    add_elastic_arguments(parser)
    shape = shape_from(parser.parse_args(["--quick"]))
    fixed = FleetgateConfig.model_validate(fleet_config("fixed", shape, "redis://x:1/0")).models[0]
    elastic = FleetgateConfig.model_validate(fleet_config("elastic", shape, "redis://x:1/0")).models[0]
    assert fixed.replicas == 3 and fixed.scaling is None
    assert elastic.replicas == 0 and elastic.scaling is not None and elastic.scaling.max_replicas == 3
    assert elastic.scaling.idle_ttl_seconds == shape["idle_ttl"]
