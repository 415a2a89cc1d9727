"""The toolbox registry in Redis: the schema toolbox processes write and routers read.

Key ``fleetgate:toolbox:<toolbox_id>`` holds one JSON ``ToolboxRecord``, rewritten every
``tools.heartbeat_seconds`` with a TTL of ``tools.registry_ttl_seconds``, so a toolbox that dies leaves the
registry within that time; one that stops deletes its key at once. Routers pick a toolbox per call by
rendezvous hashing of the call's session (``pick``): every router sends a session to the same toolbox,
the one holding its python kernel and working directory, for as long as the set of toolboxes stays the same.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

TOOLBOX_KEY_PREFIX = "fleetgate:toolbox:"


class ToolboxRecord(BaseModel):
    toolbox_id: str
    address: str
    # The built-in tools it runs ("python", "bash", "web_search").
    tools: list[str] = Field(default_factory=list)
    sessions: int = 0
    started_at: float = Field(default_factory=time.time)
    heartbeat_at: float = Field(default_factory=time.time)

    @property
    def key(self) -> str:
        return TOOLBOX_KEY_PREFIX + self.toolbox_id


async def publish(redis: aioredis.Redis, record: ToolboxRecord, ttl_seconds: float) -> None:
    record.heartbeat_at = time.time()
    await redis.set(record.key, record.model_dump_json(), px=int(ttl_seconds * 1000))


async def withdraw(redis: aioredis.Redis, toolbox_id: str) -> None:
    await redis.delete(TOOLBOX_KEY_PREFIX + toolbox_id)


async def read_all(redis: aioredis.Redis) -> list[ToolboxRecord]:
    """Every live toolbox record (expired ones are already gone)."""
    keys = [k async for k in redis.scan_iter(match=TOOLBOX_KEY_PREFIX + "*", count=100)]
    if not keys:
        return []
    values = await redis.mget(keys)
    return [ToolboxRecord.model_validate_json(v) for v in values if v]


def pick(records: Sequence[ToolboxRecord], session: str) -> ToolboxRecord | None:
    """The toolbox for ``session`` (rendezvous hashing: the highest hash of session and toolbox id wins)."""
    if not records:
        return None

    def weight(record: ToolboxRecord) -> bytes:
        return hashlib.blake2b(f"{session}\0{record.toolbox_id}".encode(), digest_size=8).digest()

    return max(records, key=weight)
