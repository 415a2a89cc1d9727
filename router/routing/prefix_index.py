"""The router's prefix index: how much of a prompt's chain each replica holds, and the session pins, in Redis.

The schema is ``fleetgate.core.kv_index``'s: a SET of router block hashes per
replica, written by the replica from its engine's KV cache events and by the
routers from their own decisions, and a key per session holding its replica.
Every router reads the same state, so a session's next turn is routed the same
wherever it arrives, and a router restart loses nothing.

``lookup`` is one round trip (a Lua script): the session's pinned replica, and
per candidate the number of leading blocks of the chain its set holds, found by
binary search (a cache evicts a chain's tail first, so what it holds of a chain
is a prefix of it). ``learn`` (one round trip, run in the background after the
request started) adds the chain to the chosen replica's set and pins the
session to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from fleetgate.core.kv_index import kv_key, session_key

# KEYS[1]: the session key ("" without a session); KEYS[2..]: the candidates' sets. ARGV: the chain, in order.
# Returns {pinned replica or "", leading blocks held by each candidate...}.
_LOOKUP = """
local n = #ARGV
local pinned = ''
if KEYS[1] ~= '' then pinned = redis.call('GET', KEYS[1]) or '' end
local out = {pinned}
for k = 2, #KEYS do
  local lo, hi = 0, n
  if n > 0 and redis.call('SISMEMBER', KEYS[k], ARGV[n]) == 1 then
    lo = n
  else
    hi = n - 1
    while lo < hi do
      local mid = math.floor((lo + hi + 1) / 2)
      if redis.call('SISMEMBER', KEYS[k], ARGV[mid]) == 1 then lo = mid else hi = mid - 1 end
    end
  end
  out[#out + 1] = lo
end
return out
"""

# KEYS[1]: the replica's set, KEYS[2]: the session key ("" without one). ARGV[1]: the set's TTL when it has
# none (a replica's heartbeat keeps it), ARGV[2]: the replica id, ARGV[3]: the session TTL, ARGV[4..]: the chain.
_LEARN = """
if #ARGV > 3 then
  for first = 4, #ARGV, 1000 do
    redis.call('SADD', KEYS[1], unpack(ARGV, first, math.min(first + 999, #ARGV)))
  end
  if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
end
if KEYS[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class IndexView:
    """What the index says about one request: the session's pinned replica, and blocks held per candidate."""

    pinned: str | None
    held_blocks: dict[str, int]


class PrefixIndex:
    def __init__(self, redis: aioredis.Redis, *, kv_ttl_seconds: int, session_ttl_seconds: int) -> None:
        self._lookup = redis.register_script(_LOOKUP)
        self._learn = redis.register_script(_LEARN)
        self.kv_ttl_seconds = kv_ttl_seconds
        self.session_ttl_seconds = session_ttl_seconds

    async def lookup(
        self, model: str, session: str | None, replica_ids: Sequence[str], chain: Sequence[bytes]
    ) -> IndexView:
        keys = [session_key(model, session) if session else "", *(kv_key(r) for r in replica_ids)]
        reply = await self._lookup(keys=keys, args=list(chain))
        pinned = reply[0].decode() if reply[0] else None
        return IndexView(pinned, {r: int(held) for r, held in zip(replica_ids, reply[1:], strict=True)})

    async def learn(self, model: str, session: str | None, replica_id: str, chain: Sequence[bytes]) -> None:
        keys = [kv_key(replica_id), session_key(model, session) if session else ""]
        await self._learn(keys=keys, args=[self.kv_ttl_seconds, replica_id, self.session_ttl_seconds, *chain])
