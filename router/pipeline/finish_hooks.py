"""Step: run the call's finish hooks on its folded completion, before the last frame or the JSON body is sent.

The hooks run in the order the steps added them (the Responses store write),
only for a completion without an error, and every one of them runs. The call's
usage is then charged (``router.pipeline.usage``: its ledger entry, budgets and
token window), error or not; a failure to record it is logged, not answered.
The first hook that fails turns the completion into an error: its ``ApiError``,
a 503 ``state_store_unavailable`` for Redis, a 500 for anything else (logged);
a streamed answer then ends with that error instead of its usual finish.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from fleetgate.router.canonical.fold import Completion
from fleetgate.router.errors import ApiError, internal_error, state_store_unavailable
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.pipeline.usage import record_finished
from fleetgate.router.state import RouterState
from fleetgate.v1 import replica_pb2 as pb

log = logging.getLogger("fleetgate.router.runner")


async def run_finish_hooks(ctx: RequestContext, state: RouterState, completion: Completion) -> ApiError | None:
    """Run the hooks on ``completion`` unless it carries an error, then charge the call's usage; returns the error
    a hook turned it into."""
    hook_error = await _run_hooks(ctx, state, completion) if completion.error is None else None
    await record_finished(ctx, state, completion)
    return hook_error


async def _run_hooks(ctx: RequestContext, state: RouterState, completion: Completion) -> ApiError | None:
    for hook in ctx.finish_hooks:
        try:
            await hook(completion, ctx)
        except ApiError as err:
            failure = err
        except RedisError as exc:
            log.warning("finish hook of request %s: shared state store unavailable: %s", ctx.request_id, exc)
            failure = state_store_unavailable(state.config.router.retry_after_seconds)
        except Exception:
            log.exception("finish hook failed for request %s", ctx.request_id)
            failure = internal_error("The router failed to finish the response")
        else:
            continue
        if completion.error is None:
            completion.error = failure
    if completion.error is not None:
        completion.finish_reason = pb.Finish.REASON_ERROR
    return completion.error
