"""``prefix``: route to the replica whose KV cache holds the most of the prompt, weighed against its load.

The prefix index (``prefix_index``, in Redis, shared by every router) says how
many leading blocks of the request's chain (``prefix_chain``) each candidate
holds and which replica the request's session is pinned to; the cost model
(``cache_cost``) chooses, under the load cap. A continuation's previous replica
(Responses ``previous_response_id``) is a pin too, before the session's. When
the request started, the chain is added to the replica's set and the session is
pinned to it, in the background. With Redis unreachable the choice falls back
to load alone (the request still needs Redis for its key, so this is rare).
``fleetgate_routing_decisions_total{policy="prefix", reason}`` counts the choices, and
``fleetgate_affinity_total{result}`` the continuations kept on (or moved off) their replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from fleetgate.core.config import PrefixRoutingConfig
from fleetgate.core.registry import ReplicaRecord
from fleetgate.router import metrics
from fleetgate.router.routing.cache_cost import decide_for
from fleetgate.router.routing.policy import RoutingFacts, RoutingPolicy
from fleetgate.router.routing.prefix_index import IndexView, PrefixIndex

log = logging.getLogger("fleetgate.router.routing")


class PrefixAwarePolicy(RoutingPolicy):
    name = "prefix"
    uses_prefix_chain = True

    def __init__(self, index: PrefixIndex, load: Callable[[ReplicaRecord], int], settings: PrefixRoutingConfig) -> None:
        self.index = index
        self.load = load
        self.settings = settings
        self._learning: set[asyncio.Task[None]] = set()

    async def choose(self, candidates: Sequence[ReplicaRecord], facts: RoutingFacts) -> ReplicaRecord:
        if not candidates:
            raise ValueError("no candidates")
        chain = facts.chain
        digests = chain.digests if chain is not None else []
        try:
            view = await self.index.lookup(facts.model, facts.session, [r.replica_id for r in candidates], digests)
        except (RedisError, OSError) as exc:
            log.warning("prefix index unreadable, routing by load: %s", exc)
            view = IndexView(None, {})
        total_bytes = chain.total_bytes if chain is not None else 0
        block_bytes = self.settings.block_bytes
        shares = {r: min(1.0, held * block_bytes / total_bytes) for r, held in view.held_blocks.items() if total_bytes}
        pinned = facts.affinity_replica or view.pinned
        decision = decide_for(candidates, facts, shares, self.load, self.settings, pinned=pinned)
        metrics.ROUTING_DECISIONS.labels(model=facts.model, policy=self.name, reason=decision.reason).inc()
        if facts.affinity_replica:
            kept = decision.replica.replica_id == facts.affinity_replica
            metrics.AFFINITY.labels(model=facts.model, result="hit" if kept else "miss").inc()
        facts.outcome.replica_id = decision.replica.replica_id
        facts.outcome.predicted_cached_share = decision.cached_share
        facts.outcome.reason = decision.reason
        return decision.replica

    def started(self, replica: ReplicaRecord, facts: RoutingFacts) -> None:
        chain = facts.chain
        if (chain is None or not chain.digests) and not facts.session:
            return
        task = asyncio.create_task(self._learn(replica, facts), name="prefix-index-learn")
        self._learning.add(task)
        task.add_done_callback(self._learning.discard)

    async def _learn(self, replica: ReplicaRecord, facts: RoutingFacts) -> None:
        digests = facts.chain.digests if facts.chain is not None else []
        try:
            await self.index.learn(facts.model, facts.session, replica.replica_id, digests)
        except (RedisError, OSError) as exc:
            log.warning("prefix index not updated for replica %s: %s", replica.replica_id, exc)
