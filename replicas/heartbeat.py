"""Keeps a replica's record in the Redis registry alive: publish every heartbeat, withdraw on drain.

Every ``interval`` seconds the record is rewritten with the engine's current
load and a TTL (``registry_ttl_seconds``), so a replica that dies disappears by
itself. Redis being down or restarting is survived: the failed beat is logged
and the next one reconnects and publishes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetgate.core import registry
from fleetgate.core.registry import Load, ReplicaRecord

log = logging.getLogger(__name__)


class Heartbeat:
    """Publishes ``record`` with fresh load every ``interval`` seconds until withdrawn."""

    def __init__(
        self, redis_url: str, record: ReplicaRecord, *, interval: float, ttl: float, load: Callable[[], Load]
    ) -> None:
        self.record = record
        self.interval = interval
        self.ttl = ttl
        self._load = load
        self._redis = aioredis.from_url(
            redis_url, socket_connect_timeout=max(interval, 1.0), socket_timeout=max(interval, 1.0)
        )
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> bool:
        """Publish once now (True when it reached Redis), then keep beating in the background."""
        published = await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.record.replica_id}")
        return published

    async def beat(self) -> bool:
        """One publish with the current load; False (logged once per outage) when Redis is unreachable."""
        self.record.load = self._load()
        try:
            await registry.publish(self._redis, self.record, self.ttl)
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning(
                    "replica %s: cannot reach Redis (%s); retrying every %.1fs",
                    self.record.replica_id,
                    exc,
                    self.interval,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("replica %s: registered again", self.record.replica_id)
        self._failing = False
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def withdraw(self) -> None:
        """Stop beating and delete the record at once (routers stop sending new requests)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.record.draining = True
        try:
            await registry.withdraw(self._redis, self.record.replica_id)
        except (RedisError, OSError) as exc:
            log.warning(
                "replica %s: could not withdraw from the registry (%s); its TTL will expire",
                self.record.replica_id,
                exc,
            )
        await self._redis.aclose()
