"""The routing policy ``router.routing_policy`` names, built from the router's settings and shared parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from fleetgate.core.config import FleetgateConfig
from fleetgate.core.kv_index import kv_ttl_seconds
from fleetgate.router.channel_pool import ReplicaChannels
from fleetgate.router.routing.in_flight import InFlight
from fleetgate.router.routing.oracle import OraclePolicy
from fleetgate.router.routing.policy import RoutingPolicy
from fleetgate.router.routing.power_of_two import PowerOfTwoPolicy
from fleetgate.router.routing.prefix_aware import PrefixAwarePolicy
from fleetgate.router.routing.prefix_index import PrefixIndex
from fleetgate.router.routing.random_choice import RandomPolicy


@dataclass(frozen=True)
class PolicyParts:
    """What policies are built from: the whole config, this router's in-flight calls, Redis, the gRPC channels."""

    config: FleetgateConfig
    in_flight: InFlight
    redis: aioredis.Redis
    channels: ReplicaChannels


def _prefix(parts: PolicyParts) -> RoutingPolicy:
    settings = parts.config.router.prefix_routing
    index = PrefixIndex(
        parts.redis,
        kv_ttl_seconds=kv_ttl_seconds(parts.config.replica.registry_ttl_seconds),
        session_ttl_seconds=settings.session_ttl_seconds,
    )
    return PrefixAwarePolicy(index, parts.in_flight.load, settings)


# router.routing_policy -> how to build it.
POLICIES: dict[str, Callable[[PolicyParts], RoutingPolicy]] = {
    PrefixAwarePolicy.name: _prefix,
    PowerOfTwoPolicy.name: lambda parts: PowerOfTwoPolicy(
        parts.in_flight.load, parts.config.router.affinity_max_extra_load
    ),
    RandomPolicy.name: lambda parts: RandomPolicy(),
    OraclePolicy.name: lambda parts: OraclePolicy(
        parts.channels, parts.in_flight.load, parts.config.router.prefix_routing
    ),
}


def routing_policy(parts: PolicyParts) -> RoutingPolicy:
    """The configured policy."""
    return POLICIES[parts.config.router.routing_policy](parts)
