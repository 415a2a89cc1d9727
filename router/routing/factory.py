"""The routing policy ``router.routing_policy`` names, built from the router's settings."""

from __future__ import annotations

from collections.abc import Callable

from fleetgate.core.config import RouterConfig
from fleetgate.router.routing.in_flight import InFlight
from fleetgate.router.routing.policy import RoutingPolicy
from fleetgate.router.routing.power_of_two import PowerOfTwoPolicy

# router.routing_policy -> how to build it.
POLICIES: dict[str, Callable[[RouterConfig, InFlight], RoutingPolicy]] = {
    PowerOfTwoPolicy.name: lambda settings, in_flight: PowerOfTwoPolicy(
        in_flight.load, settings.affinity_max_extra_load
    ),
}


def routing_policy(settings: RouterConfig, in_flight: InFlight) -> RoutingPolicy:
    """The configured policy, reading replica loads with this router's ``in_flight`` calls."""
    return POLICIES[settings.routing_policy](settings, in_flight)
