"""Step: admit the call against its key's rate limits (``router.rate_limit``, windows in ``router.rate_limit_store``).

A key without limits (its own over the router's defaults) passes untouched.
Otherwise the call is counted in the key's window or refused with the 429
(``Retry-After``, the dialect's limit headers); an admitted call's answers all
carry the dialect's rate-limit headers, and a key with a token limit is charged
the call's prompt + completion tokens when it finishes (``ChargeTokens``, a
finish hook: a call whose client went away before the end is not charged).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fleetgate.router.canonical.fold import Completion
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.rate_limit import bucket_for, rate_limit_error
from fleetgate.router.rate_limit_store import RateLimiter
from fleetgate.router.state import RouterState


async def admit(ctx: RequestContext, state: RouterState) -> None:
    limiter = state.rate_limiter
    limits = ctx.key_limits.over(limiter.defaults)
    if limits.unlimited:
        return
    bucket = bucket_for(ctx.key_id)
    reading = await limiter.admit(bucket, limits)
    headers = ctx.dialect.rate_limit_headers(limits, reading, time.time())
    if not reading.admitted:
        raise rate_limit_error(limits, reading, key_name=ctx.key_name, window_seconds=limiter.window_seconds,
                               headers=headers)
    ctx.response_headers.update(headers)
    if limits.tokens is not None:
        ctx.finish_hooks.append(ChargeTokens(limiter, bucket))


@dataclass(frozen=True)
class ChargeTokens:
    """Finish hook: the call's prompt + completion tokens go to its key's window (a Redis failure is logged)."""

    limiter: RateLimiter
    bucket: str

    async def __call__(self, completion: Completion, ctx: RequestContext) -> None:
        await self.limiter.charge(self.bucket, completion.usage.prompt_tokens + completion.usage.completion_tokens)
