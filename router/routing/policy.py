"""The routing policy interface: choose one replica from the candidates, given the request's routing facts."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from fleetgate.core.registry import ReplicaRecord
from fleetgate.router.routing.prefix_chain import PrefixChain
from fleetgate.v1 import replica_pb2 as pb


@dataclass
class RoutingOutcome:
    """What the policy expected of its choice: the replica, the share of the prompt it should hold cached, and
    why it was chosen (the policy's reason: ``cache_cost``'s for prefix and oracle, affinity / load for
    power_of_two; "" for a policy that gives none)."""

    replica_id: str = ""
    predicted_cached_share: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class RoutingFacts:
    """What a policy may know about the request it routes."""

    model: str
    # The replica that served the previous turn (Responses previous_response_id): its KV cache holds the prefix.
    affinity_replica: str | None = None
    # The caller's session, from the first session hint the request carries (x-session-id, prompt_cache_key,
    # X-Claude-Code-Session-Id, metadata.user_id, user / safety_identifier); None without one.
    session: str | None = None
    # The canonical request, and its prefix chain when the policy reads one (``uses_prefix_chain``); None for
    # a token count.
    request: pb.GenerateRequest | None = None
    chain: PrefixChain | None = None
    # Filled in by the policy that chose (the cache metrics compare it with what the engine reported).
    outcome: RoutingOutcome = field(default_factory=RoutingOutcome)


class RoutingPolicy(abc.ABC):
    """Chooses the replica a request goes to (a retry asks again, with the replicas tried left out)."""

    # Its name in router.routing_policy.
    name: ClassVar[str]
    # Whether it reads the request's prefix chain (the pipeline computes it only then, and sends it along).
    uses_prefix_chain: ClassVar[bool] = False

    @abc.abstractmethod
    async def choose(self, candidates: Sequence[ReplicaRecord], facts: RoutingFacts) -> ReplicaRecord:
        """One of ``candidates``: healthy replicas of ``facts.model``, never empty."""

    def started(self, replica: ReplicaRecord, facts: RoutingFacts) -> None:
        """The request of ``facts`` started on ``replica`` (a policy that learns from its choices records it
        here, without blocking the request); by default nothing."""
        return None
