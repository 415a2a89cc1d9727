"""Router prefix blocks onto the engine's token blocks, and the engine's KV events onto router blocks, pure.

A router block ends at byte ``(i + 1) × block_bytes`` of the canonical prompt
text. The replica knows how many tokens the prompt rendered to, not where each
byte went, so the block's end is placed at the same fraction of the prompt's
tokens: token ``⌈end / total_bytes × prompt_tokens⌉``. The router block is held
while the engine caches the token block holding that token, which is exact at
the ends of the prompt and off by the local spread of bytes per token in its
middle (the benchmark and ``fleetgate_prefix_predicted_cached_tokens_total``
measure how far). A router block past the prompt's last full token block is
never held (an engine caches full blocks only).

``prompt`` records a request's mapping (and returns the router blocks already
held, a cache hit); ``stored`` / ``removed`` / ``cleared`` follow the engine and
return the router blocks that became held or dropped. ``held`` is every router
block held now (the publisher's periodic rewrite). ``prune`` forgets the
mappings of token blocks that are not cached and were not seen since the last
prune, so memory stays bounded by what the cache holds and what is in flight.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from fleetgate.core.kv_index import encode_blocks
from fleetgate.v1 import replica_pb2 as pb


class RouterBlockMap:
    def __init__(self) -> None:
        # token block hash -> the router blocks (Redis members) whose end it holds
        self._members: dict[int, set[bytes]] = {}
        self._cached: set[int] = set()  # token blocks the engine caches now
        self._seen: set[int] = set()  # token blocks mapped since the last prune

    def prompt(
        self, prefix: pb.PrefixChain, token_blocks: Sequence[int], prompt_tokens: int, block_size: int
    ) -> set[bytes]:
        """Map a request's router blocks onto its token blocks; the router blocks its cache holds already."""
        held: set[bytes] = set()
        if not prefix.block_hashes or not token_blocks or prefix.total_bytes <= 0 or prompt_tokens <= 0:
            return held
        tokens_per_byte = prompt_tokens / prefix.total_bytes
        members = encode_blocks(prefix.block_hashes)
        for index, member in enumerate(members):
            end_token = math.ceil((index + 1) * prefix.block_bytes * tokens_per_byte)
            token_block = max(0, end_token - 1) // block_size
            if token_block >= len(token_blocks):
                break
            block = token_blocks[token_block]
            self._members.setdefault(block, set()).add(member)
            self._seen.add(block)
            if block in self._cached:
                held.add(member)
        return held

    def stored(self, token_blocks: Iterable[int]) -> set[bytes]:
        """Token blocks entered the cache: the router blocks now held."""
        held: set[bytes] = set()
        for block in token_blocks:
            self._cached.add(block)
            held |= self._members.get(block, set())
        return held

    def removed(self, token_blocks: Iterable[int]) -> set[bytes]:
        """Token blocks were evicted: the router blocks no longer held."""
        dropped: set[bytes] = set()
        for block in token_blocks:
            self._cached.discard(block)
            dropped |= self._members.pop(block, set())
        return dropped

    def cleared(self) -> None:
        """The whole cache was reset."""
        self._cached.clear()
        self._members.clear()

    def held(self) -> set[bytes]:
        """Every router block held now."""
        held: set[bytes] = set()
        for block in self._cached:
            held |= self._members.get(block, set())
        return held

    def prune(self) -> None:
        """Forget mappings of token blocks neither cached nor seen since the last prune."""
        keep = self._cached | self._seen
        for block in [b for b in self._members if b not in keep]:
            del self._members[block]
        self._seen = set()

    @property
    def mapped_blocks(self) -> int:
        return len(self._members)
