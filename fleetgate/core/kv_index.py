"""The prefix index's Redis schema: which of the router's prefix blocks each replica's KV cache holds.

``fleetgate:kv:<replica_id>`` is a SET of 8-byte big-endian router block hashes
(``GenerateRequest.prefix.block_hashes``). The replica owns it: it adds a block
when its engine caches the token block holding the block's end, removes it when
that token block is evicted, rewrites it whole now and then, and refreshes its
TTL with every heartbeat (a replica that dies takes its set with it). A router
adds the chain of every request it started on the replica at once (the engine
reports the blocks only after their prefill), so the next turn finds them
whichever router it reaches.

``fleetgate:session:<model>:<session>`` holds the replica id a session hint was
last routed to (``router.prefix_routing.session_ttl_seconds``).
"""

from __future__ import annotations

from collections.abc import Iterable

KV_KEY_PREFIX = "fleetgate:kv:"
SESSION_KEY_PREFIX = "fleetgate:session:"
# The set lives this many registry TTLs past the replica's last heartbeat.
TTL_REGISTRY_MULTIPLE = 4


def kv_key(replica_id: str) -> str:
    return KV_KEY_PREFIX + replica_id


def session_key(model: str, session: str) -> str:
    return f"{SESSION_KEY_PREFIX}{model}:{session}"


def encode_blocks(block_hashes: Iterable[int]) -> list[bytes]:
    """Router block hashes as the set's members."""
    return [block.to_bytes(8, "big") for block in block_hashes]


def kv_ttl_seconds(registry_ttl_seconds: float) -> int:
    return max(1, int(registry_ttl_seconds * TTL_REGISTRY_MULTIPLE))
