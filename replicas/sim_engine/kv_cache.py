"""The sim's paged KV cache: fixed-size blocks, prefix reuse by block hash, reference counts, LRU eviction.

Modelled on vLLM's block pool with prefix caching. The cache has ``num_blocks``
blocks of ``block_size`` tokens. A sequence is admitted with ``allocate``: its
leading prompt blocks that are cached are shared (their reference count grows;
at least one prompt token is always computed, as in vLLM), and it reserves
private blocks for the rest of its prompt and for its whole planned completion,
so a running sequence never needs more blocks and is never preempted. When
``allocate`` finds too few blocks it returns None and the caller waits.

After the sequence's prefill, ``commit`` puts its full prompt blocks into the
cache (``BlockStored``; a block another sequence cached meanwhile stays private).
``release`` drops the sequence's references; a cached block nobody references
stays cached, evictable, and is evicted least recently used first, a sequence's
last block before its first (``BlockRemoved``). Fresh blocks are taken from the
empty ones before anything cached is evicted.

KV usage is the share of blocks referenced by running sequences (vLLM's
``kv_cache_usage``: cached blocks nobody uses count as free). Without
``prefix_caching`` nothing is ever cached: no hits, no events, blocks only reserved.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from fleetgate.replicas.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvEventSink


@dataclass(eq=False)
class Allocation:
    """One running sequence's blocks: the cached prefix it shares, the prompt blocks it cached, its private ones."""

    prompt_hashes: list[int]
    shared_blocks: int
    private_blocks: int
    cached_tokens: int
    committed: list[int] = field(default_factory=list)
    released: bool = False


class PagedKvCache:
    """Blocks, their hashes and reference counts; events go to ``events`` (see the module docstring)."""

    def __init__(self, num_blocks: int, block_size: int, events: KvEventSink, prefix_caching: bool) -> None:
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.events = events
        self.prefix_caching = prefix_caching
        self._references: dict[int, int] = {}  # cached and referenced: hash -> running sequences
        self._evictable: OrderedDict[int, None] = OrderedDict()  # cached, unreferenced; least recent first
        self._empty = num_blocks
        self._in_use = 0  # blocks referenced by running sequences, cached or private

    @property
    def usage(self) -> float:
        """Share of the blocks in use by running sequences, 0..1."""
        return self._in_use / self.num_blocks

    @property
    def cached_blocks(self) -> int:
        return len(self._references) + len(self._evictable)

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def cached_prefix(self, prompt_hashes: list[int], prompt_tokens: int) -> int:
        """Leading blocks of a prompt the cache holds, leaving at least one prompt token to compute."""
        reusable = min(len(prompt_hashes), (prompt_tokens - 1) // self.block_size)
        hits = 0
        while hits < reusable and self._is_cached(prompt_hashes[hits]):
            hits += 1
        return hits

    def allocate(self, prompt_hashes: list[int], prompt_tokens: int, total_tokens: int) -> Allocation | None:
        """Blocks for a sequence of ``total_tokens`` (prompt and planned completion), or None when too few are free."""
        shared = self.cached_prefix(prompt_hashes, prompt_tokens)
        private = self.blocks_for(total_tokens) - shared
        shared_evictable = sum(1 for block in prompt_hashes[:shared] if block in self._evictable)
        if private > self._empty + len(self._evictable) - shared_evictable:
            return None
        for block in prompt_hashes[:shared]:
            self._reference(block)
        self._take(private)
        return Allocation(prompt_hashes, shared, private, shared * self.block_size)

    def commit(self, allocation: Allocation) -> None:
        """After the prefill: the sequence's uncached full prompt blocks enter the cache."""
        if allocation.released or not self.prefix_caching:
            return
        run: list[int] = []
        for index in range(allocation.shared_blocks, len(allocation.prompt_hashes)):
            block = allocation.prompt_hashes[index]
            if self._is_cached(block):  # cached meanwhile by another sequence: ours stays private
                self._stored(run, allocation.prompt_hashes, index)
                run = []
                continue
            self._references[block] = 1
            allocation.private_blocks -= 1
            allocation.committed.append(block)
            run.append(block)
        self._stored(run, allocation.prompt_hashes, len(allocation.prompt_hashes))

    def release(self, allocation: Allocation) -> None:
        """The sequence finished: its private blocks are empty again, its cached ones evictable once unused."""
        if allocation.released:
            return
        allocation.released = True
        referenced = allocation.prompt_hashes[:allocation.shared_blocks] + allocation.committed
        for block in reversed(referenced):  # the tail first, so it is evicted first
            self._references[block] -= 1
            if self._references[block] == 0:
                del self._references[block]
                self._evictable[block] = None
                self._in_use -= 1
        self._in_use -= allocation.private_blocks
        self._empty += allocation.private_blocks

    def reset(self) -> bool:
        """Forget every cached block (``AllBlocksCleared``); False, and nothing done, while any block is in use."""
        if self._in_use:
            return False
        self._empty += len(self._evictable)
        self._evictable.clear()
        self.events.publish(AllBlocksCleared())
        return True

    def _is_cached(self, block: int) -> bool:
        return block in self._references or block in self._evictable

    def _reference(self, block: int) -> None:
        if block in self._evictable:
            del self._evictable[block]
            self._references[block] = 1
            self._in_use += 1
        else:
            self._references[block] += 1

    def _take(self, count: int) -> None:
        """``count`` fresh blocks: empty ones first, then evicted ones, least recently used first."""
        from_empty = min(count, self._empty)
        self._empty -= from_empty
        evicted = [self._evictable.popitem(last=False)[0] for _ in range(count - from_empty)]
        if evicted:
            self.events.publish(BlockRemoved(tuple(evicted)))
        self._in_use += count

    def _stored(self, run: list[int], prompt_hashes: list[int], end: int) -> None:
        """A ``BlockStored`` for the contiguous ``run`` of blocks ending before index ``end``."""
        if not run:
            return
        first = end - len(run)
        parent = prompt_hashes[first - 1] if first else None
        self.events.publish(BlockStored(tuple(run), parent, len(run) * self.block_size, self.block_size))
