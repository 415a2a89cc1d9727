"""``power_of_two``: the less loaded of two random candidates, with an affinity hint for continuations.

A replica's load is ``InFlight.load``: what it publishes in the registry
(running + waiting) plus this router's own calls on it. Without a hint: two
random candidates, the less loaded wins (one candidate: that one). With an
affinity hint (the replica that served the previous turn, holding the prefix in
its KV cache): that replica, unless it is not a candidate or its load exceeds
the least loaded by more than ``router.affinity_max_extra_load``
(``fleetgate_affinity{result="hit"|"miss"}`` counts them). The choice's reason (``facts.outcome.reason``,
in the request's trace): ``affinity`` or ``load``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from fleetgate.core.registry import ReplicaRecord
from fleetgate.router import metrics
from fleetgate.router.routing.policy import RoutingFacts, RoutingPolicy


class PowerOfTwoPolicy(RoutingPolicy):
    name = "power_of_two"

    def __init__(
        self, load: Callable[[ReplicaRecord], int], affinity_max_extra_load: int, rng: random.Random | None = None
    ) -> None:
        self.load = load
        self.affinity_max_extra_load = affinity_max_extra_load
        self._rng = rng or random.Random()

    async def choose(self, candidates: Sequence[ReplicaRecord], facts: RoutingFacts) -> ReplicaRecord:
        if not candidates:
            raise ValueError("no candidates")
        if facts.affinity_replica:
            chosen = self._affine(candidates, facts.affinity_replica)
            metrics.AFFINITY.labels(model=candidates[0].model, result="hit" if chosen else "miss").inc()
            if chosen is not None:
                facts.outcome.reason = "affinity"
                return chosen
        facts.outcome.reason = "load"
        if len(candidates) == 1:
            return candidates[0]
        first, second = self._rng.sample(list(candidates), 2)
        return second if self.load(second) < self.load(first) else first

    def _affine(self, candidates: Sequence[ReplicaRecord], affinity: str) -> ReplicaRecord | None:
        preferred = next((r for r in candidates if r.replica_id == affinity), None)
        if preferred is None:
            return None
        least = min(self.load(r) for r in candidates)
        return preferred if self.load(preferred) - least <= self.affinity_max_extra_load else None
