"""The sim's KV cache events, mirroring vLLM's (``vllm/distributed/kv_events.py``), and the sink they go to.

``BlockStored`` when full prompt blocks enter the cache (after their request's
prefill), ``BlockRemoved`` when cached blocks are evicted, ``AllBlocksCleared``
when the whole prefix cache is reset. Names and fields follow vLLM's events,
except that a stored event gives ``token_count`` where vLLM gives ``token_ids``
(the sim's tokens are words, not vocabulary ids); hashes are ``block_hashes``.

The engine hands every event to its ``KvEventSink``, synchronously and in order;
the default sink drops them. They are not published anywhere yet: the transport
is for the router's prefix index to decide (a sink is where it plugs in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# vLLM's medium of device-memory blocks.
MEDIUM_GPU = "GPU"


@dataclass(frozen=True)
class BlockStored:
    """Blocks that entered the cache, in chain order; ``parent_block_hash`` is the block before the first."""

    block_hashes: tuple[int, ...]
    parent_block_hash: int | None
    token_count: int
    block_size: int
    medium: str = MEDIUM_GPU


@dataclass(frozen=True)
class BlockRemoved:
    """Cached blocks that were evicted."""

    block_hashes: tuple[int, ...]
    medium: str = MEDIUM_GPU


@dataclass(frozen=True)
class AllBlocksCleared:
    """The whole prefix cache was reset."""


KvCacheEvent = BlockStored | BlockRemoved | AllBlocksCleared


class KvEventSink(Protocol):
    """Where a sim engine's KV cache events go; called in the engine's event loop, so it must not block."""

    def publish(self, event: KvCacheEvent) -> None: ...


class NullKvEventSink:
    """The default sink: drops every event."""

    def publish(self, event: KvCacheEvent) -> None:
        return None
