"""vLLM's KV cache events → the replica's token-block chain: a mirror of which of our token blocks vLLM caches.

vLLM names a cached block by its own hash, which cannot be reproduced outside
its engine (a per-process seed, extra keys). A ``BlockStored`` carries the
block's tokens and its parent's vLLM hash, so the mirror keeps a map vLLM hash
→ our hash (``token_blocks.next_block_hash(parent, tokens)``) and translates
each event into the replica's ``kv_events`` with our hashes:

- a stored block whose parent the mirror does not know (stored before the
  subscription, or its event was lost) cannot be placed in our chain and is
  left out, and so are its descendants; so are blocks whose vLLM hash has extra
  keys (images, LoRA, a cache salt: our chain covers token ids only), blocks of
  another size (vLLM's partial blocks) and of another KV cache group than the
  first;
- vLLM can hold two copies of one block (two requests computed it before
  either cached it): every ``BlockStored`` counts a copy, every ``BlockRemoved``
  drops one, and a block is removed from our chain with its last copy;
- ``AllBlocksCleared`` (``reset_prefix_cache``) and ``forget`` (events were
  lost) clear the mirror.

``cached_blocks`` answers how many leading blocks of a prompt's chain are cached.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from vllm.distributed import kv_events as vllm_events

from fleetgate.replicas.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvCacheEvent
from fleetgate.replicas.token_blocks import next_block_hash

# KV cache groups other than the first are left out (hybrid models); None is a single-group model's.
_FIRST_GROUPS = (None, 0)


@dataclass
class _Mirrored:
    """One vLLM block: our hash for it and how many copies vLLM holds."""

    ours: int
    copies: int = 1


class KvBlockMirror:
    """What vLLM's prefix cache holds, in our token-block hashes; fed vLLM's events in publication order."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self._blocks: dict[Hashable, _Mirrored] = {}
        self._cached: set[int] = set()
        self.skipped_blocks = 0  # stored blocks that could not be placed in our chain

    def __len__(self) -> int:
        return len(self._cached)

    def cached_blocks(self, block_hashes: Sequence[int]) -> int:
        """How many leading blocks of ``block_hashes`` (our chain) are cached."""
        count = 0
        for block_hash in block_hashes:
            if block_hash not in self._cached:
                break
            count += 1
        return count

    def apply(self, event: object) -> KvCacheEvent | None:
        """Our event for one vLLM event (None when nothing of it maps into our chain)."""
        if isinstance(event, vllm_events.BlockStored):
            return self._stored(event)
        if isinstance(event, vllm_events.BlockRemoved):
            return self._removed(event)
        if isinstance(event, vllm_events.AllBlocksCleared):
            return self.forget()
        return None

    def forget(self) -> AllBlocksCleared:
        """Clear the mirror: vLLM's cache was reset, or events were lost and nothing is vouched for any more."""
        self._blocks.clear()
        self._cached.clear()
        return AllBlocksCleared()

    def _stored(self, event: vllm_events.BlockStored) -> BlockStored | None:
        size = self.block_size
        if event.group_idx not in _FIRST_GROUPS or event.block_size != size \
                or len(event.token_ids) != len(event.block_hashes) * size:
            self.skipped_blocks += len(event.block_hashes)
            return None
        if event.parent_block_hash is None:
            parent: int | None = None
        elif (known := self._blocks.get(event.parent_block_hash)) is not None:
            parent = known.ours
        else:
            self.skipped_blocks += len(event.block_hashes)
            return None
        first_parent = parent
        ours: list[int] = []
        for index, vllm_hash in enumerate(event.block_hashes):
            if event.extra_keys and event.extra_keys[index] is not None:
                self.skipped_blocks += len(event.block_hashes) - index
                break
            parent = next_block_hash(parent, event.token_ids[index * size:(index + 1) * size])
            self._add_copy(vllm_hash, parent)
            ours.append(parent)
        if not ours:
            return None
        return BlockStored(tuple(ours), first_parent, len(ours) * size, size)

    def _add_copy(self, vllm_hash: Hashable, ours: int) -> None:
        mirrored = self._blocks.get(vllm_hash)
        if mirrored is None:
            self._blocks[vllm_hash] = _Mirrored(ours)
            self._cached.add(ours)
        else:
            mirrored.copies += 1

    def _removed(self, event: vllm_events.BlockRemoved) -> BlockRemoved | None:
        if event.group_idx not in _FIRST_GROUPS:
            return None
        removed: list[int] = []
        for vllm_hash in event.block_hashes:
            mirrored = self._blocks.get(vllm_hash)
            if mirrored is None:
                continue
            mirrored.copies -= 1
            if mirrored.copies == 0:
                del self._blocks[vllm_hash]
                self._cached.discard(mirrored.ours)
                removed.append(mirrored.ours)
        return BlockRemoved(tuple(removed)) if removed else None
