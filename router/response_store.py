"""Stored Responses API objects in Redis, for ``previous_response_id`` and retrieval.

Key ``fleetgate:response:<response_id>`` holds one JSON ``StoredResponse``: the
response object as returned to the client, its full input conversation (every
item the model saw except ``instructions``: the history inherited through
``previous_response_id`` plus the request's own input, as Responses items with
ids), the id of the API key that created it and the replica that produced it.
The TTL is ``router.responses_ttl_seconds`` (default 30 days), set on write.

A stored response belongs to its key: reading or deleting it with another key
is the same as it not existing (the caller turns that into a 404). Redis being
unreachable raises redis-py's ``RedisError``, which the router answers with a 503
(``router.errors.state_store_unavailable``), never a bare 500.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

RESPONSE_KEY_PREFIX = "fleetgate:response:"


class StoredResponse(BaseModel):
    id: str
    key_id: str
    # The replica that produced the response: continuations prefer it (its KV cache holds the prefix).
    replica_id: str = ""
    # The conversation the model saw, without instructions (Responses items with ids).
    input: list[dict[str, Any]] = Field(default_factory=list)
    # The response object as returned to the client (its `output` continues the conversation).
    response: dict[str, Any]

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """What a continuation inherits: this response's input, then its output."""
        return [*self.input, *self.response.get("output", [])]


def response_key(response_id: str) -> str:
    return RESPONSE_KEY_PREFIX + response_id


class ResponseStore:
    """Read and write stored responses; every method raises ``RedisError`` when Redis fails."""

    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl_seconds = ttl_seconds

    async def put(self, stored: StoredResponse) -> None:
        await self._redis.set(response_key(stored.id), stored.model_dump_json(), ex=self._ttl_seconds)

    async def get(self, response_id: str, key_id: str) -> StoredResponse | None:
        """The stored response, or None when it does not exist, expired or belongs to another key."""
        raw = await self._redis.get(response_key(response_id))
        if raw is None:
            return None
        stored = StoredResponse.model_validate_json(raw)
        return stored if stored.key_id == key_id else None

    async def delete(self, response_id: str, key_id: str) -> bool:
        """Delete a response of this key; False when there was none to delete."""
        if await self.get(response_id, key_id) is None:
            return False
        return bool(await self._redis.delete(response_key(response_id)))
