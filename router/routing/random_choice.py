"""``random``: any candidate, uniformly (the benchmark's floor: blind to cache and load)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from fleetgate.core.registry import ReplicaRecord
from fleetgate.router.routing.policy import RoutingFacts, RoutingPolicy


class RandomPolicy(RoutingPolicy):
    name = "random"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    async def choose(self, candidates: Sequence[ReplicaRecord], facts: RoutingFacts) -> ReplicaRecord:
        if not candidates:
            raise ValueError("no candidates")
        return self._rng.choice(list(candidates))
