"""A record a process keeps alive in a Redis registry: the shared shape of the replica and toolbox registries.

A ``RegisteredRecord`` is one JSON value under its ``key``, rewritten every heartbeat with a TTL so that a
process that dies leaves the registry by itself within that TTL; one that stops deletes its key at once.
``Heartbeat`` does the rewriting in the background: before each publish it runs the owner's ``refresh`` (fresh
load, session counts), and it survives Redis being down or restarting (logged once per outage; the next beat
reconnects and publishes again). ``fleetgate/core/registry.py`` (replicas) and
``fleetgate/core/toolbox_registry.py`` (toolboxes) define their records on it; routers read them with
``read_all``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RegisteredRecord(BaseModel):
    """What every registry record carries besides its own fields."""

    started_at: float = Field(default_factory=time.time)
    heartbeat_at: float = Field(default_factory=time.time)

    @property
    def key(self) -> str:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """How logs name the process the record stands for ("replica sim-1a2b")."""
        raise NotImplementedError


RecordT = TypeVar("RecordT", bound=RegisteredRecord)


async def publish(redis: aioredis.Redis, record: RegisteredRecord, ttl_seconds: float) -> None:
    """Write ``record`` stamped with the time now, expiring after ``ttl_seconds``."""
    record.heartbeat_at = time.time()
    await redis.set(record.key, record.model_dump_json(), px=int(ttl_seconds * 1000))


async def read_all(redis: aioredis.Redis, prefix: str, record_type: type[RecordT]) -> list[RecordT]:
    """Every live record under ``prefix`` (expired ones are already gone)."""
    keys = [k async for k in redis.scan_iter(match=prefix + "*", count=500)]
    if not keys:
        return []
    values = await redis.mget(keys)
    return [record_type.model_validate_json(v) for v in values if v]


class Heartbeat(Generic[RecordT]):
    """Publishes ``record`` every ``interval`` seconds, after ``refresh`` has updated it, until withdrawn."""

    def __init__(
        self,
        redis_url: str,
        record: RecordT,
        *,
        interval: float,
        ttl: float,
        refresh: Callable[[], Awaitable[None]],
    ) -> None:
        self.record = record
        self.interval = interval
        self.ttl = ttl
        self._refresh = refresh
        timeout = max(interval, 1.0)
        self._redis = aioredis.from_url(redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> bool:
        """Publish once now (True when it reached Redis), then keep beating in the background."""
        published = await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat {self.record.label}")
        return published

    async def beat(self) -> bool:
        """One refresh and publish; False (logged once per outage) when Redis is unreachable."""
        await self._refresh()
        try:
            await publish(self._redis, self.record, self.ttl)
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("%s: cannot reach Redis (%s); retrying every %.1fs", self.record.label, exc, self.interval)
            self._failing = True
            return False
        if self._failing:
            log.info("%s: registered again", self.record.label)
        self._failing = False
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def withdraw(self) -> None:
        """Stop beating and delete the record at once (routers stop sending new calls)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self._redis.delete(self.record.key)
        except (RedisError, OSError) as exc:
            log.warning("%s: could not withdraw from the registry (%s); its TTL will expire", self.record.label, exc)
        await self._redis.aclose()
