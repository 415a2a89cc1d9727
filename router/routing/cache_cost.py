"""The cache-against-load trade-off of the ``prefix`` and ``oracle`` policies, pure: one cost per candidate.

A candidate's cost is the work the request would wait for there, in blocks of
the prefix chain (``router.prefix_routing.block_bytes``, ≈ block_bytes / 4
tokens each):

    cost = prefill_weight × uncached blocks + load_weight × load + kv_weight × KV-cache utilisation

where the uncached blocks are the prompt's blocks minus the share the replica
holds, and load is its running + waiting sequences plus this router's calls on
it. A replica is saturated when its load reaches ``max_load`` or the number of
sequences its engine runs at once (``max_num_seqs``, when it publishes it: more
would only wait in its queue), or exceeds the least loaded candidate's by more
than ``max_extra_load``; a saturated replica is chosen only when every candidate
is. A pinned replica (the session's, or the one that served the previous
response) is kept while it is not saturated.
Otherwise the cheapest wins; equal costs go to the replica ranked first for the
prompt's first block (rendezvous hashing), so every router breaks ties alike and
prompts that begin alike meet on one replica.

The reason: ``session`` (the pin held), ``hit`` (the chosen replica holds the
most of the prompt any candidate holds, and some of it), ``spill`` (a candidate
holding more, or the pinned one, was saturated or busier than the prefill it
would save), ``cold`` (no candidate holds any of it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from fleetgate.core.config import PrefixRoutingConfig
from fleetgate.core.registry import ReplicaRecord
from fleetgate.router.routing.policy import RoutingFacts

Reason = Literal["session", "hit", "spill", "cold"]


@dataclass(frozen=True)
class Decision:
    replica: ReplicaRecord
    reason: Reason
    # The share of the prompt the chosen replica holds, 0..1.
    cached_share: float


def decide(
    candidates: Sequence[ReplicaRecord],
    cached_share: Mapping[str, float],
    prompt_blocks: float,
    load: Callable[[ReplicaRecord], int],
    settings: PrefixRoutingConfig,
    *,
    pinned: str | None = None,
    tie_key: bytes = b"",
) -> Decision:
    """The candidate to route to (never empty ``candidates``); ``cached_share`` per replica id, 0..1."""
    loads = {r.replica_id: load(r) for r in candidates}
    least = min(loads.values())

    def saturated(record: ReplicaRecord) -> bool:
        busy = loads[record.replica_id]
        cap = min(settings.max_load, record.max_num_seqs) if record.max_num_seqs else settings.max_load
        return busy >= cap or busy - least > settings.max_extra_load

    def share(record: ReplicaRecord) -> float:
        return cached_share.get(record.replica_id, 0.0)

    best_share = max(share(r) for r in candidates)
    pin = next((r for r in candidates if r.replica_id == pinned), None)
    if pin is not None and not saturated(pin):
        return Decision(pin, "session", share(pin))
    eligible = [r for r in candidates if not saturated(r)] or list(candidates)

    def cost(record: ReplicaRecord) -> tuple[float, bytes]:
        uncached = prompt_blocks * (1.0 - share(record))
        kv = max(0.0, record.load.kv_cache_usage)
        total = settings.prefill_weight * uncached + settings.load_weight * loads[record.replica_id]
        return total + settings.kv_weight * kv, _rank(tie_key, record.replica_id)

    chosen = min(eligible, key=cost)
    if pin is not None or share(chosen) < best_share:
        reason: Reason = "spill"  # the pinned replica was saturated, or one holding more was passed over
    elif best_share <= 0.0:
        reason = "cold"
    else:
        reason = "hit"
    return Decision(chosen, reason, share(chosen))


def decide_for(
    candidates: Sequence[ReplicaRecord],
    facts: RoutingFacts,
    cached_share: Mapping[str, float],
    load: Callable[[ReplicaRecord], int],
    settings: PrefixRoutingConfig,
    *,
    pinned: str | None = None,
) -> Decision:
    """``decide`` for a request: its prompt's size in chain blocks, and its first block (else its model) to break
    ties by."""
    chain = facts.chain
    prompt_blocks = chain.total_bytes / settings.block_bytes if chain is not None else 0.0
    tie_key = chain.digests[0] if chain is not None and chain.digests else facts.model.encode()
    return decide(candidates, cached_share, prompt_blocks, load, settings, pinned=pinned, tie_key=tie_key)


def _rank(tie_key: bytes, replica_id: str) -> bytes:
    return hashlib.blake2b(tie_key + replica_id.encode(), digest_size=8).digest()
