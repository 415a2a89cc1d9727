"""Rate-limit windows in Redis: admit a request; its tokens are charged with its usage (math: ``router.rate_limit``).

Redis key ``fleetgate:ratelimit:<key id>`` (``fleetgate:ratelimit:anonymous``
with auth off): a hash ``{requests, tokens}`` for the key's current window. Its
TTL is the window: set to ``router.rate_limit_window_seconds`` (default 60 s)
by the write that opens the window and never extended, so the hash disappears
when the window closes, and its PTTL is the time to the reset (Redis's clock,
the same for every router). Each step is one Lua script on one key, atomic
across any number of routers sharing the Redis:

- admit (before dispatch): refuse when the window's requests or tokens have
  reached a limit, without counting; otherwise count the request.
- charge: the request's input + output tokens are added to the window's
  ``tokens`` by the usage ledger's script, in the same write as the request's
  ledger entry (``router.usage.ledger``), for keys with a token limit — also a
  request whose client went away or whose replica failed mid-stream.

A Redis error while admitting propagates (the pipeline answers the 503
``state_store_unavailable``).
The pipeline's admission step (``router.pipeline.admit``) decides with them.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from fleetgate.core.config import RouterConfig
from fleetgate.router.rate_limit import Limits, WindowReading

WINDOW_PREFIX = "fleetgate:ratelimit:"
NO_LIMIT = -1

# KEYS[1] the window; ARGV window ms, request limit, token limit (-1: none).
# Refuses by the rule of router.rate_limit.exceeded. Returns {admitted, requests, tokens, pttl}.
_ADMIT_SCRIPT = """
local counts = redis.call('HMGET', KEYS[1], 'requests', 'tokens')
local requests = tonumber(counts[1]) or 0
local tokens = tonumber(counts[2]) or 0
local request_limit = tonumber(ARGV[2])
local token_limit = tonumber(ARGV[3])
local admitted = 1
if (request_limit >= 0 and requests >= request_limit) or (token_limit >= 0 and tokens >= token_limit) then
  admitted = 0
else
  requests = redis.call('HINCRBY', KEYS[1], 'requests', 1)
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {admitted, requests, tokens, ttl}
"""

def _limit_arg(limit: int | None) -> int:
    return NO_LIMIT if limit is None else limit


class RateLimiter:
    """The windows of every key: admit a request, charge its tokens (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, defaults: Limits, window_seconds: float) -> None:
        self.defaults = defaults
        self.window_seconds = window_seconds
        self.window_ms = max(1, round(window_seconds * 1000))
        self._admit = redis.register_script(_ADMIT_SCRIPT)

    @classmethod
    def from_settings(cls, redis: aioredis.Redis, settings: RouterConfig) -> RateLimiter:
        defaults = Limits(settings.rate_limit_requests_per_minute, settings.rate_limit_tokens_per_minute)
        return cls(redis, defaults, settings.rate_limit_window_seconds)

    async def admit(self, bucket: str, limits: Limits) -> WindowReading:
        """Count one request in ``bucket``'s window unless ``limits`` refuse it (then nothing is counted)."""
        args = [self.window_ms, _limit_arg(limits.requests), _limit_arg(limits.tokens)]
        admitted, requests, tokens, pttl = await self._admit(keys=[WINDOW_PREFIX + bucket], args=args)
        return WindowReading(bool(admitted), int(requests), int(tokens), int(pttl) / 1000)
