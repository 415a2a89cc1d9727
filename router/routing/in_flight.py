"""This router's open calls per replica: acquired when a call to a replica opens, released when it ends.

Between two registry heartbeats a replica's published load (running + waiting)
does not show the calls this router just sent it; ``load`` adds them, and the
routing policies read it. ``fleetgate_router_replica_in_flight{model, replica}``
exports the count.
"""

from __future__ import annotations

from collections import Counter

from fleetgate.core.registry import ReplicaRecord
from fleetgate.router import metrics


class InFlight:
    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def count(self, replica_id: str) -> int:
        return self._counts[replica_id]

    def load(self, record: ReplicaRecord) -> int:
        """The replica's published running + waiting, plus this router's calls on it."""
        return record.load.running + record.load.waiting + self._counts[record.replica_id]

    def acquire(self, record: ReplicaRecord) -> None:
        self._counts[record.replica_id] += 1
        self._export(record, self._counts[record.replica_id])

    def release(self, record: ReplicaRecord) -> None:
        self._counts[record.replica_id] -= 1
        remaining = self._counts[record.replica_id]
        if remaining <= 0:
            del self._counts[record.replica_id]
        self._export(record, max(remaining, 0))

    @staticmethod
    def _export(record: ReplicaRecord, count: int) -> None:
        metrics.REPLICA_IN_FLIGHT.labels(model=record.model, replica=record.replica_id).set(count)
