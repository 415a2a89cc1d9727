"""Step: admit the call against its key's rate limits, then into its model's admission queue.

Rate limits (``router.rate_limit``, windows in ``router.rate_limit_store``): a key without limits (its own
over the router's defaults) passes untouched.
Otherwise the call is counted in the key's window or refused with the 429
(``Retry-After``, the dialect's limit headers); an admitted call's answers all
carry the dialect's rate-limit headers, and a key with a token limit is charged
the call's prompt + completion tokens when it finishes (``ChargeTokens``, a
finish hook: a call whose client went away before the end is not charged).

Admission (``router.admission``): the call takes one of its model's in-flight
slots, waiting for one in the queue if need be (a client that goes away while
it waits leaves at once); a call shed for overload is answered 429 (OpenAI
APIs) or 529 (Messages) with ``Retry-After`` and the key's limit headers. The
slot is on the context (``ctx.admission``); the runner releases it when the call
ends, however it ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request

from fleetgate.router.admission import Shed
from fleetgate.router.admission.shed import shed_error
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.pipeline.fold import _wait_for_disconnect
from fleetgate.router.rate_limit import bucket_for, rate_limit_error
from fleetgate.router.rate_limit_store import RateLimiter
from fleetgate.router.state import RouterState


async def admit(ctx: RequestContext, state: RouterState) -> None:
    await check_rate_limits(ctx, state)
    await take_slot(ctx, state)


async def check_rate_limits(ctx: RequestContext, state: RouterState) -> None:
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


async def take_slot(ctx: RequestContext, state: RouterState) -> None:
    assert ctx.request is not None
    model = ctx.request.model
    http = ctx.http
    until_gone = (lambda: _wait_for_disconnect(http)) if isinstance(http, Request) else None
    try:
        ctx.admission = await state.admission.admit(model, state.model_label(model), key_id=ctx.key_id,
                                                    until_gone=until_gone)
    except Shed as shed:
        err = shed_error(shed, ctx.dialect, state.config.router.admission.retry_after_seconds)
        err.extra_headers.update(ctx.response_headers)
        raise err from None


@dataclass(frozen=True)
class ChargeTokens:
    """Finish hook: the call's prompt + completion tokens go to its key's window (a Redis failure is logged)."""

    limiter: RateLimiter
    bucket: str

    async def __call__(self, completion: Completion, ctx: RequestContext) -> None:
        await self.limiter.charge(self.bucket, completion.usage.prompt_tokens + completion.usage.completion_tokens)
