"""The routing policy interface: choose one replica from the candidates, given the request's routing facts."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from fleetgate.core.registry import ReplicaRecord


@dataclass(frozen=True)
class RoutingFacts:
    """What a policy may know about the request it routes."""

    model: str
    # The replica that served the previous turn (Responses previous_response_id): its KV cache holds the prefix.
    affinity_replica: str | None = None


class RoutingPolicy(abc.ABC):
    """Chooses the replica a request goes to (a retry asks again, with the replicas tried left out)."""

    # Its name in router.routing_policy.
    name: ClassVar[str]

    @abc.abstractmethod
    def choose(self, candidates: Sequence[ReplicaRecord], facts: RoutingFacts) -> ReplicaRecord:
        """One of ``candidates``: healthy replicas of ``facts.model``, never empty."""
