"""Replicas as Ray actors (local Ray): registration in the real Redis, removal when killed, supervision."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
import ray

from conftest import free_port
from fleetgate.core.config import FleetgateConfig, load_config
from fleetgate.core.registry import REPLICA_KEY_PREFIX, ReplicaRecord
from fleetgate.replicas.controller import ReplicaActor, ReplicaController
from fleetgate.replicas.placement import actor_options
from fleetgate.replicas.ports import port_is_free
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc
from replica_process import SIM_CONFIG


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        namespace="fleetgate-test",
        object_store_memory=100 * 1024**2,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


@pytest.fixture()
def sim_config(redis_url: str) -> FleetgateConfig:
    """tests/configs/sim.yaml reduced to one `sim` replica, on the session's Redis."""
    config = load_config(SIM_CONFIG, environ={"FLEETGATE_REDIS__URL": redis_url})
    return config.model_copy(update={"models": [config.model("sim").model_copy(update={"replicas": 1})]})


def registered(redis_server, replica_id: str) -> ReplicaRecord | None:
    raw = redis_server.client().get(REPLICA_KEY_PREFIX + replica_id)
    return ReplicaRecord.model_validate_json(raw) if raw else None


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_actor_registers_and_is_gone_after_it_is_killed(local_ray, sim_config, redis_server):
    model = sim_config.model("sim")
    actor = ReplicaActor.options(**actor_options(model)).remote(sim_config, "sim", "sim-ray-actor")
    started = ray.get(actor.start.remote(), timeout=60)
    record = registered(redis_server, "sim-ray-actor")
    assert record is not None
    assert (record.model, record.engine, record.address) == ("sim", "sim", started["address"])
    assert record.address.split(":")[0] == ray.util.get_node_ip_address()
    ray.kill(actor, no_restart=True)
    assert wait_for(lambda: registered(redis_server, "sim-ray-actor") is None, timeout=10)


def test_controller_replaces_a_dead_replica_and_drains_on_stop(local_ray, sim_config, redis_server):
    controller = ReplicaController(sim_config)
    try:
        assert controller.start(timeout=60)
        (slot,) = controller.slots
        first_id = slot.replica_id
        assert registered(redis_server, first_id) is not None
        ray.kill(slot.actor, no_restart=True)
        replacement = wait_for(
            lambda: slot.record is not None and slot.replica_id != first_id and slot.replica_id, timeout=45
        )
        assert replacement, "the controller did not replace the killed replica"
        assert registered(redis_server, replacement) is not None
    finally:
        controller.stop(grace=5)
    assert registered(redis_server, slot.replica_id) is None
    assert ray.is_initialized()  # the controller leaves a Ray it did not start running


def free_port_pair(avoid: tuple[int, ...] = ()) -> int:
    """A port p with p and p + 1 free on Ray's node address (what the actors bind), neither in ``avoid``."""
    host = ray.util.get_node_ip_address()
    for _ in range(50):
        base = free_port()
        pair = {base, base + 1}
        if base < 65000 and not pair.intersection(avoid) and all(port_is_free(host, port) for port in pair):
            return base
    raise RuntimeError("no two consecutive free ports found")


def test_actors_on_one_node_take_the_first_free_ports_from_the_base(local_ray, sim_config, redis_server):
    base = free_port_pair()
    metrics_base = free_port_pair(avoid=(base, base + 1))
    ports = sim_config.replica.model_copy(update={"base_port": base, "metrics_base_port": metrics_base})
    config = sim_config.model_copy(update={"replica": ports})
    options = actor_options(config.model("sim"))
    actors = [ReplicaActor.options(**options).remote(config, "sim", f"sim-port-{n}") for n in range(2)]
    try:
        records = [ReplicaRecord.model_validate(r) for r in ray.get([a.start.remote() for a in actors], timeout=60)]
        assert sorted(int(r.address.rsplit(":", 1)[1]) for r in records) == [base, base + 1]
        assert sorted(urlsplit(r.metrics_url).port for r in records) == [metrics_base, metrics_base + 1]
        for record in records:
            stored = registered(redis_server, record.replica_id)
            assert stored is not None and (stored.address, stored.metrics_url) == (record.address, record.metrics_url)
            with grpc.insecure_channel(record.address) as channel:
                info = replica_pb2_grpc.ReplicaStub(channel).Info(pb.InfoRequest(), timeout=10)
            assert info.replica_id == record.replica_id
            # Every series the replica serves names it, so dashboards split per replica anywhere.
            exposition = httpx.get(record.metrics_url, timeout=10).text
            running = [line for line in exposition.splitlines() if line.startswith("fleetgate_replica_running{")]
            assert running and all(f'replica="{record.replica_id}"' in line for line in running)
            process = [line for line in exposition.splitlines() if line.startswith("process_cpu_seconds_total")]
            assert process and all(
                f'replica="{record.replica_id}"' in line and 'model="sim"' in line for line in process
            )
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
