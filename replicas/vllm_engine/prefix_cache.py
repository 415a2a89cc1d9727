"""The vLLM engine's view of its prefix cache: KV events in, the replica's ``KvEventSink`` and cache answers out.

Before the engine starts, ``PrefixCacheEvents`` picks private endpoints for
vLLM's event publisher (``kv_events_config`` for the engine args); once it
runs, it subscribes (``kv_event_subscriber``), translates every event into the
replica's token-block chain (``kv_block_mirror``) and hands the result, in
order, to the sink. It answers how many prompt tokens are cached (the mirror's
leading blocks, at most ``prompt − 1`` tokens: vLLM always computes the last
one) and how many a request wrote into the cache (its full prompt blocks that
were not cached: vLLM's automatic prefix caching keeps every full prompt block).
"""

from __future__ import annotations

from collections.abc import Sequence

from vllm.config.kv_events import KVEventsConfig

from fleetgate.replicas.kv_events import KvEventSink
from fleetgate.replicas.token_blocks import block_hashes
from fleetgate.replicas.vllm_engine.kv_block_mirror import KvBlockMirror
from fleetgate.replicas.vllm_engine.kv_event_subscriber import (
    KvEventSubscriber,
    PrivateEndpoints,
    private_endpoints,
)
from fleetgate.v1 import replica_pb2 as pb


class PrefixCacheEvents:
    """One engine's KV event subscription and cache mirror; ``kv_events_config``, ``start``, ``stop``."""

    def __init__(self, sink: KvEventSink) -> None:
        self.sink = sink
        self._endpoints: PrivateEndpoints | None = None
        self.mirror: KvBlockMirror | None = None
        self.subscriber: KvEventSubscriber | None = None

    def kv_events_config(self) -> KVEventsConfig:
        """The engine's ``kv_events_config``: publish on fresh private endpoints."""
        self._endpoints = private_endpoints()
        return self._endpoints.kv_events_config()

    def start(self, block_size: int, prefix_caching: bool) -> None:
        """Subscribe to the running engine's events (none without ``prefix_caching``: nothing is ever cached)."""
        assert self._endpoints is not None, "kv_events_config first"
        self.mirror = KvBlockMirror(block_size)
        if prefix_caching:
            self.subscriber = KvEventSubscriber(self._endpoints, self._publish, self.forget)
            self.subscriber.start()

    async def stop(self) -> None:
        subscriber, self.subscriber = self.subscriber, None
        if subscriber is not None:
            await subscriber.stop()
        endpoints, self._endpoints = self._endpoints, None
        if endpoints is not None:
            endpoints.remove()

    @property
    def block_size(self) -> int:
        assert self.mirror is not None, "not started"
        return self.mirror.block_size

    def prompt(self, prefix: pb.PrefixChain, prompt_token_ids: Sequence[int]) -> None:
        """Tell the sink about a request about to be queued: its router chain and its token blocks."""
        size = self.block_size
        self.sink.prompt(prefix, block_hashes(prompt_token_ids, size), len(prompt_token_ids), size)

    def cached_tokens(self, prompt_token_ids: Sequence[int]) -> int:
        """Prompt tokens vLLM would read from its cache right now, by the mirror."""
        assert self.mirror is not None, "not started"
        size = self.block_size
        reusable = prompt_token_ids[: (len(prompt_token_ids) - 1) // size * size]
        return self.mirror.cached_blocks(block_hashes(reusable, size)) * size

    def written_tokens(self, prompt_tokens: int, cached_tokens: int) -> int:
        """Prompt tokens a request wrote into the cache: its full prompt blocks beyond the cached ones."""
        if self.subscriber is None:  # prefix caching is off
            return 0
        return max(0, prompt_tokens // self.block_size * self.block_size - cached_tokens)

    def _publish(self, events: list[object]) -> None:
        assert self.mirror is not None
        for event in events:
            ours = self.mirror.apply(event)
            if ours is not None:
                self.sink.publish(ours)

    def forget(self) -> None:
        """Nothing is cached any more (the cache was reset, or events were lost): the sink hears it at once."""
        assert self.mirror is not None
        self.sink.publish(self.mirror.forget())
