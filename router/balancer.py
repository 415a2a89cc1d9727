"""Picking a replica: power of two choices, with an affinity hint for continuations.

A replica's load is what it publishes in the registry (running + waiting) plus
this router's own in-flight requests on it (fresh between heartbeats). Without
a hint: two random healthy replicas, the less loaded wins. With an affinity
hint (the replica that served the previous turn, holding the prefix in its KV
cache): that replica, unless it is not healthy or its load exceeds the least
loaded by more than ``router.affinity_max_extra_load`` (``fleetgate_affinity``
counts hits and misses).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from fleetgate.core.registry import ReplicaRecord
from fleetgate.router import metrics


class Balancer:
    def __init__(self, affinity_max_extra_load: int, rng: random.Random | None = None) -> None:
        self.affinity_max_extra_load = affinity_max_extra_load
        self._rng = rng or random.Random()
        self._in_flight: Counter[str] = Counter()

    def in_flight(self, replica_id: str) -> int:
        return self._in_flight[replica_id]

    def load(self, record: ReplicaRecord) -> int:
        return record.load.running + record.load.waiting + self._in_flight[record.replica_id]

    def choose(self, candidates: Sequence[ReplicaRecord], *, affinity: str | None = None) -> ReplicaRecord:
        """One of ``candidates`` (not empty)."""
        if not candidates:
            raise ValueError("no candidates")
        if affinity:
            chosen = self._affine(candidates, affinity)
            metrics.AFFINITY.labels(model=candidates[0].model, result="hit" if chosen else "miss").inc()
            if chosen is not None:
                return chosen
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

    def acquire(self, record: ReplicaRecord) -> None:
        self._in_flight[record.replica_id] += 1
        metrics.REPLICA_IN_FLIGHT.labels(model=record.model, replica=record.replica_id).set(self._in_flight[record.replica_id])

    def release(self, record: ReplicaRecord) -> None:
        self._in_flight[record.replica_id] -= 1
        remaining = self._in_flight[record.replica_id]
        if remaining <= 0:
            del self._in_flight[record.replica_id]
        metrics.REPLICA_IN_FLIGHT.labels(model=record.model, replica=record.replica_id).set(max(remaining, 0))
