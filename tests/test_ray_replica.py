"""Replicas as Ray actors (local Ray): registration in the real Redis, removal when killed, supervision."""

from __future__ import annotations

import time

import pytest
import ray
from replica_process import SIM_CONFIG

from fleetgate.config import FleetgateConfig, load_config
from fleetgate.registry import REPLICA_KEY_PREFIX, ReplicaRecord
from replicas.controller import ReplicaActor, ReplicaController, replica_slots
from replicas.placement import actor_options


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, namespace="fleetgate-test", object_store_memory=100 * 1024**2, log_to_driver=False)
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
        replacement = wait_for(lambda: slot.record is not None and slot.replica_id != first_id and slot.replica_id, timeout=45)
        assert replacement, "the controller did not replace the killed replica"
        assert registered(redis_server, replacement) is not None
    finally:
        controller.stop(grace=5)
    assert registered(redis_server, slot.replica_id) is None
    assert ray.is_initialized()  # the controller leaves a Ray it did not start running


def test_replicas_take_consecutive_ports_across_models():
    config = FleetgateConfig.model_validate({
        "replica": {"base_port": 50100, "metrics_base_port": 9100},
        "models": [{"name": "a", "engine": "sim", "replicas": 2}, {"name": "b", "engine": "sim", "replicas": 1}],
    })
    slots = replica_slots(config)
    assert [(s.model.name, s.index, s.port, s.metrics_port) for s in slots] == [
        ("a", 0, 50100, 9100), ("a", 1, 50101, 9101), ("b", 0, 50102, 9102),
    ]
    free = config.model_copy(update={"replica": config.replica.model_copy(update={"base_port": 0, "metrics_base_port": 0})})
    assert {(s.port, s.metrics_port) for s in replica_slots(free)} == {(0, 0)}
