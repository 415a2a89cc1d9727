"""An engine's KV cache events, mirroring vLLM's (``vllm/distributed/kv_events.py``), and the sink they go to.

``BlockStored`` when full prompt blocks enter the cache (after their request's
prefill), ``BlockRemoved`` when cached blocks are evicted, ``AllBlocksCleared``
when the whole prefix cache is reset. Names and fields follow vLLM's events,
except that a stored event gives ``token_count`` where vLLM gives ``token_ids``;
hashes are the replica's token-block chain (``token_blocks.block_hashes``): the
sim's cache keys on it, and the vLLM engine translates vLLM's events into it.

Both engines hand the sink, synchronously and in order, every event and, before
a request is queued, its ``prompt``: the router's prefix chain it came with
(``pb.PrefixChain``) and the prompt's token-block hashes, which is how the
replica's prefix-index publisher (``replicas.kv_index``) knows which router
blocks a cached token block holds. The default sink drops everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from fleetgate.v1 import replica_pb2 as pb

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
    """Where an engine's KV cache events go; called in the engine's event loop, so it must not block."""

    def publish(self, event: KvCacheEvent) -> None: ...

    def prompt(self, prefix: pb.PrefixChain, block_hashes: Sequence[int], prompt_tokens: int, block_size: int) -> None:
        """A request is about to be queued: its router prefix chain, its token-block hashes and prompt length."""
        ...


class NullKvEventSink:
    """The default sink: drops everything."""

    def publish(self, event: KvCacheEvent) -> None:
        return None

    def prompt(self, prefix: pb.PrefixChain, block_hashes: Sequence[int], prompt_tokens: int, block_size: int) -> None:
        return None
