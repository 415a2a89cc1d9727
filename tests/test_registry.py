"""Replica processes in the real Redis registry: the record, its load, and how it disappears."""

from __future__ import annotations

import time
import urllib.request

import grpc
import pytest

from conftest import RedisServer
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc
from replica_process import SIM_CONFIG, ReplicaProcess


def wait_for(predicate, timeout: float = 10.0):
    """Poll until ``predicate()`` is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_replica_registers_a_record_that_describes_it(replica_factory):
    replica = replica_factory("sim-reasoning")
    record = replica.record
    assert (record.replica_id, record.model, record.engine) == (replica.replica_id, "sim-reasoning", "sim")
    assert record.capabilities.tools and record.capabilities.reasoning and record.capabilities.structured_output
    assert record.max_context_length == 32768
    assert record.pid == replica.proc.pid
    assert not record.draining
    with grpc.insecure_channel(record.address) as channel:
        info = replica_pb2_grpc.ReplicaStub(channel).Info(pb.InfoRequest(), timeout=5)
    assert (info.replica_id, list(info.model_names)) == (replica.replica_id, ["sim-reasoning"])
    metrics = urllib.request.urlopen(record.metrics_url, timeout=5).read().decode()
    assert f'fleetgate_replica_in_flight{{model="sim-reasoning",replica="{replica.replica_id}"}}' in metrics


def test_heartbeat_publishes_the_current_load(replica_factory):
    replica = replica_factory("sim-slow")
    with grpc.insecure_channel(replica.address) as channel:
        call = replica_pb2_grpc.ReplicaStub(channel).Generate(
            pb.GenerateRequest(
                request_id="load-1",
                model="sim-slow",
                messages=[pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text="hi")])],
            )
        )
        assert next(call).HasField("started")
        busy = wait_for(lambda: (r := replica.registry_record()) and r.load.running == 1)
        call.cancel()
        idle = wait_for(lambda: (r := replica.registry_record()) and r.load.running == 0)
    assert busy and idle


def test_killed_replica_is_gone_within_the_ttl(replica_factory):
    replica = replica_factory("sim")
    replica.kill()
    assert replica.registry_record() is not None  # no chance to withdraw: the record lingers until its TTL
    assert wait_for(lambda: replica.registry_record() is None, timeout=10)


def test_terminated_replica_withdraws_at_once_and_exits_cleanly(replica_factory):
    replica = replica_factory("sim")
    assert replica.terminate() == 0
    assert replica.registry_record() is None


def test_replica_registers_again_after_redis_restarts(tmp_path):
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    try:
        with ReplicaProcess(SIM_CONFIG, "sim", redis_server.url, log_path=tmp_path / "replica.log") as replica:
            redis_server.stop()
            time.sleep(1.0)  # a few failed heartbeats
            redis_server.start()
            restarted_at = time.time()
            record = wait_for(lambda: (r := replica.registry_record()) and r.heartbeat_at > restarted_at and r)
            assert record, replica.log_tail()
            assert record.address == replica.address
    finally:
        redis_server.stop()


@pytest.mark.parametrize("model", ["no-such-model"])
def test_unknown_model_exits_with_an_error(redis_url, tmp_path, model):
    replica = ReplicaProcess(SIM_CONFIG, model, redis_url, log_path=tmp_path / "replica.log")
    with pytest.raises(RuntimeError, match="exited with 2"):
        replica.start(timeout=30)
