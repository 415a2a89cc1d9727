"""The benchmark's load generators and process handling against real parts.

A sim replica and a router are started with ``loadtest.bench.processes`` (as
``fleetgate bench`` starts them); the gRPC and HTTP generators must see every
request succeed with the sim's exact token count, and leaving the ``ProcessSet``
must leave no process behind, also when the block fails.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fleetgate.loadtest.bench.cpu import CpuMeter, tree_cpu_seconds
from fleetgate.loadtest.bench.loadgen import GrpcGenerateTarget, HttpChatTarget, LoadPlan, measure
from fleetgate.loadtest.bench.processes import ProcessSet, start_replica, start_router
from fleetgate.loadtest.bench.stats import summarize
from replica_process import SIM_CONFIG

MODEL = "sim"
SIM_TOKENS = 8  # tests/configs/sim.yaml: model sim answers 8 lorem words


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with ProcessSet(tmp_path_factory.mktemp("bench-processes")) as processes:
        replica, record = start_replica(processes, SIM_CONFIG, MODEL, redis_server.url, name="sim-replica")
        router, router_url = start_router(processes, SIM_CONFIG, MODEL, redis_server.url)
        yield {"replica": replica, "address": record.address, "router": router, "router_url": router_url}


def test_grpc_generator_sees_every_token(cluster: dict) -> None:
    target = GrpcGenerateTarget(cluster["address"], MODEL, max_tokens=64)
    run = asyncio.run(measure(target, LoadPlan(4, requests=12, warmup_requests=4),
                              [CpuMeter("replica", cluster["replica"].pid)]))
    assert len(run.records) == 12
    assert all(r.ok and r.tokens == SIM_TOKENS and r.first_token is not None for r in run.records)
    summary = summarize(run.records, run.wall_seconds, run.cpu_seconds["replica"])
    assert (summary.requests, summary.errors, summary.tokens) == (12, 0, 12 * SIM_TOKENS)
    assert summary.cpu_seconds is not None and summary.cpu_seconds >= 0


def test_grpc_generator_respects_max_tokens(cluster: dict) -> None:
    run = asyncio.run(measure(GrpcGenerateTarget(cluster["address"], MODEL, max_tokens=3), LoadPlan(2, requests=4)))
    assert [r.tokens for r in run.records] == [3, 3, 3, 3]


def test_http_generator_through_the_router(cluster: dict) -> None:
    target = HttpChatTarget([cluster["router_url"]], MODEL, max_tokens=64)
    run = asyncio.run(measure(target, LoadPlan(3, seconds=1.0), [CpuMeter("router", cluster["router"].pid)]))
    assert run.records and all(r.ok for r in run.records), [r.error for r in run.records if r.error][:3]
    assert {r.tokens for r in run.records} == {SIM_TOKENS}
    assert set(run.cpu_seconds) == {"router"}


def test_http_generator_records_errors_instead_of_raising(cluster: dict) -> None:
    target = HttpChatTarget([cluster["router_url"]], "no-such-model", max_tokens=8)
    run = asyncio.run(measure(target, LoadPlan(2, requests=2)))
    assert [r.ok for r in run.records] == [False, False]
    assert all(r.error.startswith("HTTP 404") for r in run.records), [r.error for r in run.records]
    assert summarize(run.records, run.wall_seconds).errors == 2


def test_process_set_stops_everything_even_when_the_block_fails(redis_server, tmp_path: Path) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"):
        with ProcessSet(tmp_path) as processes:
            replica, _ = start_replica(processes, SIM_CONFIG, MODEL, redis_server.url, name="doomed")
            pids.append(replica.pid)
            assert tree_cpu_seconds(replica.pid) > 0
            raise RuntimeError("boom")
    assert not psutil.pid_exists(pids[0])  # stopped and reaped
    # Its process group is gone too.
    with pytest.raises(ProcessLookupError):
        os.killpg(pids[0], 0)
