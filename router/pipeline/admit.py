"""Step: admit the call against its key's policy and rate limits, then into its model's admission queue.

Key policy (``router.usage.budgets``): a model outside the key's allowlist is a 403, a ``max_tokens`` above the
key's cap is lowered to it, and a key whose day or month token budget is used up gets a 429 until it resets.

Rate limits (``router.rate_limit``, windows in ``router.rate_limit_store``): a key without limits (its own
over the router's defaults) passes untouched.
Otherwise the call is counted in the key's window or refused with the 429
(``Retry-After``, the dialect's limit headers); an admitted call's answers all
carry the dialect's rate-limit headers, and a key with a token limit is charged
the call's input + output tokens when it ends, with its usage (``router.pipeline.usage``: also a call whose
client went away, or whose replica failed, for what the engine processed).

Admission (``router.admission``): the call takes one of its model's in-flight
slots, waiting for one in the queue if need be (a client that goes away while
it waits leaves at once); a call shed for overload is answered 429 (OpenAI
APIs) or 529 (Messages) with ``Retry-After`` and the key's limit headers. The
slot is on the context (``ctx.admission``); the runner releases it when the call
ends, however it ends (``release_slot``: with the tokens it was served, which
the fair share between keys charges to the key, ``router.admission.fair_share``).
"""

from __future__ import annotations

import time

from starlette.requests import Request

from fleetgate.router.admission import Shed
from fleetgate.router.admission.shed import shed_error
from fleetgate.router.elastic import ensure_loaded
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.pipeline.fold import _wait_for_disconnect
from fleetgate.router.rate_limit import bucket_for, rate_limit_error
from fleetgate.router.state import RouterState
from fleetgate.router.usage.budgets import (
    MAX_TOKENS_CAP_HEADER,
    budget_exceeded,
    capped_max_tokens,
    model_not_allowed,
    standings,
)
from fleetgate.router.usage.charge import ChargedTokens


async def admit(ctx: RequestContext, state: RouterState) -> None:
    await check_key_policy(ctx, state)
    await check_rate_limits(ctx, state)
    await ensure_loaded(ctx, state)  # a just-in-time load (router.elastic); a stream's wait is the runner's
    if ctx.load_wait is None:
        await take_slot(ctx, state)


async def check_key_policy(ctx: RequestContext, state: RouterState) -> None:
    """The key's model allowlist (403), its ``max_tokens`` cap (lowers the request's) and its token budgets
    (429 once one is used up; the budget headers on every answer): ``router.usage.budgets``."""
    policy = ctx.key_policy
    request = ctx.request
    assert request is not None
    if not policy.allows_model(request.model):
        raise model_not_allowed(request.model, policy, ctx.key_name)
    requested = request.sampling.max_tokens if request.sampling.HasField("max_tokens") else None
    if (capped := capped_max_tokens(requested, policy.max_tokens)) is not None:
        request.sampling.max_tokens = capped
        ctx.response_headers[MAX_TOKENS_CAP_HEADER] = str(capped)
    if not policy.budgets.any:
        return
    now = time.time()
    budgets = standings(policy, await state.usage.budget_use(ctx.key_id, now), now)
    headers = ctx.dialect.budget_headers(budgets, now)
    if exhausted := next((b for b in budgets if b.exhausted), None):
        raise budget_exceeded(exhausted, key_name=ctx.key_name, now=now, headers=headers)
    ctx.response_headers.update(headers)


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
        ctx.token_window = bucket  # charged with the call's usage when it ends (router.pipeline.usage)


async def take_slot(ctx: RequestContext, state: RouterState) -> None:
    assert ctx.request is not None
    model = ctx.request.model
    http = ctx.http
    until_gone = (lambda: _wait_for_disconnect(http)) if isinstance(http, Request) else None
    queued_at = time.perf_counter()
    try:
        ctx.admission = await state.admission.admit(model, state.model_label(model), key_id=ctx.key_id,
                                                    key_label=state.key_labels.label(ctx.key_id),
                                                    weight=ctx.key_policy.weight, until_gone=until_gone)
    except Shed as shed:
        err = shed_error(shed, ctx.dialect, state.config.router.admission.retry_after_seconds)
        err.extra_headers.update(ctx.response_headers)
        raise err from None
    finally:
        ctx.queue_seconds = time.perf_counter() - queued_at


def release_slot(ctx: RequestContext) -> None:
    """The call ended: its slot is freed, and its key's fair-share account learns the tokens it was served (what
    its usage charge counts; nothing when it never reached an engine; unknown when it left before any output was
    folded: the advance stands)."""
    if ctx.admission is None:
        return
    tokens: int | None = 0
    if ctx.completion is not None:
        tokens = ChargedTokens.of(ctx.completion).total
    elif ctx.event_stream is not None:
        tokens = None
    ctx.admission.release(tokens)
