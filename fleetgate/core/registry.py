"""The replica registry in Redis: the schema replicas write and routers read.

Key ``fleetgate:replica:<replica_id>`` holds one JSON ``ReplicaRecord``. The replica
rewrites it every heartbeat with a TTL of ``replica.registry_ttl_seconds`` (default
4 s), so a replica that dies is gone from the registry within that time. A replica
that drains deletes its key at once (the heartbeat: ``fleetgate/core/registered.py``).
"""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from fleetgate.core import registered
from fleetgate.core.registered import RegisteredRecord

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


class ReplicaRecord(RegisteredRecord):
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
    pid: int | None = None

    @property
    def key(self) -> str:
        return REPLICA_KEY_PREFIX + self.replica_id

    @property
    def label(self) -> str:
        return f"replica {self.replica_id}"


async def read_all(redis: aioredis.Redis) -> list[ReplicaRecord]:
    """Every live replica record (expired ones are already gone)."""
    return await registered.read_all(redis, REPLICA_KEY_PREFIX, ReplicaRecord)
