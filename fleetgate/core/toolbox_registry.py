"""The toolbox registry in Redis: the schema toolbox processes write and routers read.

Key ``fleetgate:toolbox:<toolbox_id>`` holds one JSON ``ToolboxRecord``, rewritten every
``tools.heartbeat_seconds`` with a TTL of ``tools.registry_ttl_seconds``, so a toolbox that dies leaves the
registry within that time; one that stops deletes its key at once (the heartbeat:
``fleetgate/core/registered.py``). Routers pick a toolbox per call by
rendezvous hashing of the call's session (``pick``): every router sends a session to the same toolbox,
the one holding its python kernel and working directory, for as long as the set of toolboxes stays the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import redis.asyncio as aioredis
from pydantic import Field

from fleetgate.core import registered
from fleetgate.core.registered import RegisteredRecord

TOOLBOX_KEY_PREFIX = "fleetgate:toolbox:"


class ToolboxRecord(RegisteredRecord):
    toolbox_id: str
    address: str
    # The built-in tools it runs ("python", "bash", "web_search").
    tools: list[str] = Field(default_factory=list)
    sessions: int = 0

    @property
    def key(self) -> str:
        return TOOLBOX_KEY_PREFIX + self.toolbox_id

    @property
    def label(self) -> str:
        return f"toolbox {self.toolbox_id}"


async def read_all(redis: aioredis.Redis) -> list[ToolboxRecord]:
    """Every live toolbox record (expired ones are already gone)."""
    return await registered.read_all(redis, TOOLBOX_KEY_PREFIX, ToolboxRecord)


def pick(records: Sequence[ToolboxRecord], session: str) -> ToolboxRecord | None:
    """The toolbox for ``session`` (rendezvous hashing: the highest hash of session and toolbox id wins)."""
    if not records:
        return None

    def weight(record: ToolboxRecord) -> bytes:
        return hashlib.blake2b(f"{session}\0{record.toolbox_id}".encode(), digest_size=8).digest()

    return max(records, key=weight)
