"""``KvIndexPublisher``: the engine's KV event sink that keeps the replica's prefix-index set in Redis true.

The engine calls it synchronously (``prompt`` before a request is queued, and
every KV cache event); it updates its ``RouterBlockMap`` and queues the router
blocks to add to or remove from ``fleetgate:kv:<replica_id>``. A background task
writes the queued changes every ``FLUSH_SECONDS`` (one pipeline: removals, then
additions, then the TTL), rewrites the whole set from the map every
``resync_seconds`` (a copy under a temporary key, renamed over the set: the set
is never seen half written), and refreshes its TTL. A failed write is logged
once per outage, and the next successful one is a full rewrite (a Redis that
restarted lost the set). ``stop`` deletes the set: a drained replica holds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetgate.core.kv_index import kv_key
from fleetgate.replicas.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvCacheEvent
from fleetgate.replicas.kv_index.block_map import RouterBlockMap
from fleetgate.v1 import replica_pb2 as pb

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.05
# Members per SADD / SREM command.
_BATCH = 1000


class KvIndexPublisher:
    def __init__(self, redis_url: str, replica_id: str, *, ttl_seconds: int, resync_seconds: float) -> None:
        self.key = kv_key(replica_id)
        self.ttl_seconds = ttl_seconds
        self.resync_seconds = resync_seconds
        self.map = RouterBlockMap()
        self._redis = aioredis.from_url(redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
        self._add: set[bytes] = set()
        self._remove: set[bytes] = set()
        self._rewrite = True  # the first write sets the whole set (a restarted replica's old one is stale)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    # -- the engine's sink (synchronous, never blocks) -----------------------------

    def prompt(self, prefix: pb.PrefixChain, block_hashes: Sequence[int], prompt_tokens: int, block_size: int) -> None:
        self._held(self.map.prompt(prefix, block_hashes, prompt_tokens, block_size))

    def publish(self, event: KvCacheEvent) -> None:
        if isinstance(event, BlockStored):
            self._held(self.map.stored(event.block_hashes))
        elif isinstance(event, BlockRemoved):
            dropped = self.map.removed(event.block_hashes)
            self._add -= dropped
            self._remove |= dropped
        elif isinstance(event, AllBlocksCleared):
            self.map.cleared()
            self._add.clear()
            self._remove.clear()
            self._rewrite = True
        self._dirty.set()

    def _held(self, members: set[bytes]) -> None:
        if members:
            self._remove -= members
            self._add |= members
            self._dirty.set()

    # -- writing -------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"kv-index-{self.key}")

    async def stop(self) -> None:
        """Stop writing and delete the set (best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self.key)
        await self._redis.aclose()

    async def _run(self) -> None:
        last_rewrite = time.monotonic()
        last_ttl = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=self.ttl_seconds / 3)
            await asyncio.sleep(FLUSH_SECONDS)  # gather what the engine does meanwhile into one write
            self._dirty.clear()
            now = time.monotonic()
            if now - last_rewrite >= self.resync_seconds:
                self._rewrite = True
            try:
                if self._rewrite:
                    await self._write_whole()
                    last_rewrite = now
                elif self._add or self._remove or now - last_ttl >= self.ttl_seconds / 3:
                    await self._write_changes()
                last_ttl = now
            except (RedisError, OSError) as exc:
                if not self._failing:
                    log.warning("prefix index %s not written (%s); rewriting it when Redis is back", self.key, exc)
                self._failing = True
                self._rewrite = True
                continue
            if self._failing:
                log.info("prefix index %s written again", self.key)
                self._failing = False

    async def _write_changes(self) -> None:
        add, remove = self._add, self._remove
        self._add, self._remove = set(), set()  # a failed write is followed by a whole rewrite
        async with self._redis.pipeline(transaction=False) as pipe:
            for batch in _batches(remove):
                pipe.srem(self.key, *batch)
            for batch in _batches(add):
                pipe.sadd(self.key, *batch)
            pipe.expire(self.key, self.ttl_seconds)
            await pipe.execute()

    async def _write_whole(self) -> None:
        self.map.prune()
        held = self.map.held()
        self._add, self._remove = set(), set()
        self._rewrite = False
        temporary = self.key + ":rewrite"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(temporary)
            for batch in _batches(held):
                pipe.sadd(temporary, *batch)
            if held:
                pipe.rename(temporary, self.key)
                pipe.expire(self.key, self.ttl_seconds)
            else:
                pipe.delete(self.key)
            await pipe.execute()


def _batches(members: set[bytes]) -> list[list[bytes]]:
    ordered = list(members)
    return [ordered[start:start + _BATCH] for start in range(0, len(ordered), _BATCH)]
