"""``oracle``: the benchmark's upper bound, with exact knowledge of every replica's KV cache.

For each request it asks every candidate (gRPC ``CachedPrefix``, concurrently)
how many of the prompt's tokens its cache holds right now, then chooses with the
same cost model as ``prefix`` (``cache_cost``) from those exact shares. That is
one extra call per candidate per request, which is why it is for benchmarks
(the sim answers exactly; a replica that cannot tell, or does not answer within
``ORACLE_TIMEOUT_SECONDS``, counts as holding nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import grpc

from fleetgate.core.config import PrefixRoutingConfig
from fleetgate.core.registry import ReplicaRecord
from fleetgate.router import metrics
from fleetgate.router.channel_pool import ReplicaChannels
from fleetgate.router.routing.cache_cost import decide_for
from fleetgate.router.routing.policy import RoutingFacts, RoutingPolicy
from fleetgate.v1 import replica_pb2 as pb

ORACLE_TIMEOUT_SECONDS = 2.0


class OraclePolicy(RoutingPolicy):
    name = "oracle"
    uses_prefix_chain = True

    def __init__(
        self, channels: ReplicaChannels, load: Callable[[ReplicaRecord], int], settings: PrefixRoutingConfig
    ) -> None:
        self.channels = channels
        self.load = load
        self.settings = settings

    async def choose(self, candidates: Sequence[ReplicaRecord], facts: RoutingFacts) -> ReplicaRecord:
        if not candidates:
            raise ValueError("no candidates")
        shares: dict[str, float] = {}
        if facts.request is not None:
            answers = await asyncio.gather(*(self._cached_share(r, facts.request) for r in candidates))
            shares = dict(zip((r.replica_id for r in candidates), answers, strict=True))
        decision = decide_for(candidates, facts, shares, self.load, self.settings)
        metrics.ROUTING_DECISIONS.labels(model=facts.model, policy=self.name, reason=decision.reason).inc()
        facts.outcome.replica_id = decision.replica.replica_id
        facts.outcome.predicted_cached_share = decision.cached_share
        facts.outcome.reason = decision.reason
        return decision.replica

    async def _cached_share(self, replica: ReplicaRecord, request: pb.GenerateRequest) -> float:
        try:
            reply = await self.channels.stub(replica.address).CachedPrefix(request, timeout=ORACLE_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError:
            return 0.0
        if not reply.supported or reply.prompt_tokens <= 0:
            return 0.0
        return float(reply.cached_tokens / reply.prompt_tokens)
