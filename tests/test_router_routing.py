"""Routing policies (router/routing/, pure): the configured policy is built, and power_of_two chooses as documented.

The prefix policy's parts are tested in test_routing_prefix.py (chain, cost model) and
test_kv_index.py / test_router_prefix_routing.py (against Redis and real replicas).

The dispatcher's use of them (retries on another replica, the in-flight gauge) runs
against real replicas in test_router_failover.py.
"""

from __future__ import annotations

import asyncio
import random
import typing
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from fleetgate.core.config import FleetgateConfig, RouterConfig
from fleetgate.core.registry import Load, ReplicaRecord
from fleetgate.router import metrics
from fleetgate.router.channel_pool import replica_channels
from fleetgate.router.routing.factory import POLICIES, PolicyParts, routing_policy
from fleetgate.router.routing.in_flight import InFlight
from fleetgate.router.routing.policy import RoutingFacts
from fleetgate.router.routing.power_of_two import PowerOfTwoPolicy

MODEL = "routing-test"
T = TypeVar("T")


def run(choice: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(choice)


def replica(replica_id: str, running: int = 0, waiting: int = 0) -> ReplicaRecord:
    return ReplicaRecord(replica_id=replica_id, model=MODEL, engine="sim", address=f"{replica_id}:1",
                         load=Load(running=running, waiting=waiting))


def affinity_count(result: str) -> float:
    return metrics.AFFINITY.labels(model=MODEL, result=result)._value.get()


def test_every_configurable_policy_is_built_and_the_default_is_prefix() -> None:
    choices = typing.get_args(RouterConfig.model_fields["routing_policy"].annotation)
    assert set(choices) == set(POLICIES) == {"prefix", "power_of_two", "random", "oracle"}
    assert RouterConfig().routing_policy == "prefix"
    redis = aioredis.Redis()  # not connected: building a policy talks to nobody
    for choice in choices:
        config = FleetgateConfig(router=RouterConfig(routing_policy=choice))
        assert routing_policy(PolicyParts(config, InFlight(), redis, replica_channels())).name == choice


def test_power_of_two_takes_the_less_loaded_of_two() -> None:
    idle, busy = replica("idle"), replica("busy", running=3, waiting=1)
    policy = PowerOfTwoPolicy(InFlight().load, affinity_max_extra_load=8, rng=random.Random(0))
    assert {run(policy.choose([idle, busy], RoutingFacts(MODEL))).replica_id for _ in range(20)} == {"idle"}
    assert run(policy.choose([busy], RoutingFacts(MODEL))) is busy
    with pytest.raises(ValueError):
        run(policy.choose([], RoutingFacts(MODEL)))


def test_this_routers_calls_count_in_the_load_until_released() -> None:
    a, b = replica("a"), replica("b", running=1)
    in_flight = InFlight()
    policy = PowerOfTwoPolicy(in_flight.load, affinity_max_extra_load=8, rng=random.Random(0))
    in_flight.acquire(a)
    in_flight.acquire(a)
    assert (in_flight.count("a"), in_flight.load(a)) == (2, 2)
    assert run(policy.choose([a, b], RoutingFacts(MODEL))).replica_id == "b"
    in_flight.release(a)
    in_flight.release(a)
    assert in_flight.count("a") == 0
    assert run(policy.choose([a, b], RoutingFacts(MODEL))).replica_id == "a"


def test_affinity_holds_while_the_replica_is_not_much_busier() -> None:
    least, previous = replica("least"), replica("previous", running=4)
    policy = PowerOfTwoPolicy(InFlight().load, affinity_max_extra_load=4, rng=random.Random(0))
    hits, misses = affinity_count("hit"), affinity_count("miss")
    assert run(policy.choose([least, previous], RoutingFacts(MODEL, affinity_replica="previous"))) is previous
    busier = replica("previous", running=5)
    assert run(policy.choose([least, busier], RoutingFacts(MODEL, affinity_replica="previous"))) is least
    assert run(policy.choose([least], RoutingFacts(MODEL, affinity_replica="gone"))) is least
    assert (affinity_count("hit") - hits, affinity_count("miss") - misses) == (1, 2)
