"""Keeps a toolbox's record in the Redis registry (``fleetgate/core/toolbox_registry.py``) alive.

Every ``tools.heartbeat_seconds`` the record is rewritten with the current session count and a TTL of
``tools.registry_ttl_seconds``; the same beat drops the sessions past their TTL. Redis being down is survived
(logged once per outage, published again when it is back); ``withdraw`` deletes the record at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetgate.core import toolbox_registry
from fleetgate.core.toolbox_registry import ToolboxRecord

log = logging.getLogger(__name__)


class ToolboxHeartbeat:
    def __init__(
        self,
        redis_url: str,
        record: ToolboxRecord,
        *,
        interval: float,
        ttl: float,
        each_beat: Callable[[], Awaitable[int]],
    ) -> None:
        """``each_beat`` runs before every publish and returns the session count to publish."""
        self.record = record
        self._interval = interval
        self._ttl = ttl
        self._each_beat = each_beat
        timeout = max(interval, 1.0)
        self._redis = aioredis.from_url(redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"toolbox-heartbeat-{self.record.toolbox_id}")

    async def beat(self) -> None:
        self.record.sessions = await self._each_beat()
        try:
            await toolbox_registry.publish(self._redis, self.record, self._ttl)
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("toolbox %s: cannot reach Redis (%s); retrying", self.record.toolbox_id, exc)
            self._failing = True
            return
        if self._failing:
            log.info("toolbox %s: registered again", self.record.toolbox_id)
        self._failing = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.beat()

    async def withdraw(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await toolbox_registry.withdraw(self._redis, self.record.toolbox_id)
        except (RedisError, OSError) as exc:
            log.warning("toolbox %s: could not withdraw (%s); its TTL will expire", self.record.toolbox_id, exc)
        await self._redis.aclose()
