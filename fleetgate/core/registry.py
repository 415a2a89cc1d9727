"""The replica registry in Redis: the schema replicas write and routers read.

Key ``fleetgate:replica:<replica_id>`` holds one JSON ``ReplicaRecord``. The replica
rewrites it every heartbeat with a TTL of ``replica.registry_ttl_seconds`` (default
4 s), so a replica that dies is gone from the registry within that time. A replica
that drains deletes its key at once.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

REPLICA_KEY_PREFIX = "fleetgate:replica:"


class Capabilities(BaseModel):
    tools: bool = False
    reasoning: bool = False
    vision: bool = False
    structured_output: bool = False
    # An embedding model (its config's `task: embed`): it serves /v1/embeddings and nothing else.
    embeddings: bool = False


class Load(BaseModel):
    running: int = 0
    waiting: int = 0
    # 0..1, negative when the engine does not report it.
    kv_cache_usage: float = -1.0


class ReplicaRecord(BaseModel):
    replica_id: str
    model: str
    engine: str
    address: str
    metrics_url: str | None = None
    max_context_length: int = 0
    # The engine's bound on sequences it runs at once (vLLM's max_num_seqs); 0: not reported.
    max_num_seqs: int = 0
    capabilities: Capabilities = Field(default_factory=Capabilities)
    load: Load = Field(default_factory=Load)
    draining: bool = False
    started_at: float = Field(default_factory=time.time)
    heartbeat_at: float = Field(default_factory=time.time)
    pid: int | None = None

    @property
    def key(self) -> str:
        return REPLICA_KEY_PREFIX + self.replica_id


async def publish(redis: aioredis.Redis, record: ReplicaRecord, ttl_seconds: float) -> None:
    record.heartbeat_at = time.time()
    await redis.set(record.key, record.model_dump_json(), px=int(ttl_seconds * 1000))


async def withdraw(redis: aioredis.Redis, replica_id: str) -> None:
    await redis.delete(REPLICA_KEY_PREFIX + replica_id)


async def read_all(redis: aioredis.Redis) -> list[ReplicaRecord]:
    """Every live replica record (expired ones are already gone)."""
    keys = [k async for k in redis.scan_iter(match=REPLICA_KEY_PREFIX + "*", count=500)]
    if not keys:
        return []
    values = await redis.mget(keys)
    return [ReplicaRecord.model_validate_json(v) for v in values if v]
