"""Step glue: charge each call to its key's usage ledger once, when it ends (``router.usage``).

A generation of a key with a token rate limit or a budget that reached its
finish is recorded by ``record_finished`` before its last frame or JSON body is
sent (awaited, so the key's next request sees it in its budgets and token
window); every other ending of such a key's call — refused before any
generation, the client gone, the replica or the router failing mid-stream — by
``record_unfinished`` from the runner's ``finally``, in a task of its own (the
call may be being cancelled). The calls of every other key are batched: added
up in memory per key x model x day and written every ``router.usage.flush_seconds``
(one script per entry instead of one per request: the router's CPU per request).
A Redis failure is logged (a batch is kept for the next flush); the answer is kept.
With auth on, a call that never authenticated is not charged to anyone.
The per-key usage metrics (``fleetgate_key_usage_*``) count the same charges.
"""

from __future__ import annotations

import time

from fleetgate.router import metrics
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.state import RouterState
from fleetgate.router.usage.charge import Charge, charge_for

TOKEN_KINDS = (("input", "input_tokens"), ("cached_input", "cached_input_tokens"), ("output", "output_tokens"),
               ("reasoning", "reasoning_tokens"))


def _charge(ctx: RequestContext, state: RouterState, status: int, completion: Completion | None) -> Charge | None:
    if ctx.usage_recorded or (state.config.router.auth and not ctx.key_id):
        return None
    ctx.usage_recorded = True
    ttft = ctx.observer.ttft_seconds
    if ttft is None and ctx.clock.first_output is not None:
        ttft = ctx.clock.first_output - ctx.clock.received
    charge = charge_for(
        ctx.key_id, state.model_label(ctx.model), at=time.time(), status=status, completion=completion,
        ttft_seconds=ttft, duration_seconds=time.perf_counter() - ctx.clock.received,
        queue_seconds=ctx.queue_seconds, window=ctx.token_window,
    )
    _count(state, charge)
    return charge


def _count(state: RouterState, charge: Charge) -> None:
    key = state.key_labels.label(charge.key_id)
    metrics.KEY_USAGE_REQUESTS.labels(key_id=key, model=charge.model, outcome=charge.outcome).inc()
    for kind, field in TOKEN_KINDS:
        if amount := getattr(charge, field):
            metrics.KEY_USAGE_TOKENS.labels(key_id=key, model=charge.model, kind=kind).inc(amount)


def _checked_before_the_next(ctx: RequestContext, charge: Charge) -> bool:
    """Whether the key's next request reads this charge: a token rate limit or a budget (then it is written
    at once; otherwise it is batched, ``router.usage.flush_seconds``)."""
    return bool(charge.window) or ctx.key_policy.budgets.any


async def record_finished(ctx: RequestContext, state: RouterState, completion: Completion) -> None:
    """Charge a generation that reached its finish (with or without an error)."""
    status = completion.error.status if completion.error is not None else 200
    charge = _charge(ctx, state, status, completion)
    if charge is None:
        return
    if not _checked_before_the_next(ctx, charge):
        state.usage.batch(charge)
        return
    await state.usage.record_logged(charge)


def record_unfinished(ctx: RequestContext, state: RouterState) -> None:
    """Charge a call that ended any other way (what it got of a generation, if anything), in the background."""
    charge = _charge(ctx, state, ctx.status, ctx.completion)
    if charge is None:
        return
    if _checked_before_the_next(ctx, charge):
        state.usage.record_later(charge)
    else:
        state.usage.batch(charge)
