"""How many requests of a model this router may have in flight: the sum of its healthy replicas' slots.

A replica's slots are ``ceil(in_flight_factor × max_num_seqs)``, its engine's
batch bound as it publishes it in its registry record (``default_max_num_seqs``
when it publishes none), or ``max_in_flight_per_replica`` when configured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from fleetgate.core.config import AdmissionConfig
from fleetgate.core.registry import ReplicaRecord


def replica_slots(record: ReplicaRecord, settings: AdmissionConfig) -> int:
    if settings.max_in_flight_per_replica is not None:
        return settings.max_in_flight_per_replica
    seqs = record.max_num_seqs or settings.default_max_num_seqs
    return max(1, math.ceil(settings.in_flight_factor * seqs))


def model_slots(records: Iterable[ReplicaRecord], settings: AdmissionConfig) -> int:
    return sum(replica_slots(record, settings) for record in records)
