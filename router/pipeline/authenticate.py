"""Step: authenticate the caller (401 for a missing, unknown or revoked key when ``router.auth`` is on)."""

from __future__ import annotations

from fleetgate.router import auth
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.state import RouterState


async def authenticate(ctx: RequestContext, state: RouterState) -> None:
    """The caller's key id, name and own rate limits on the context (anonymous with auth off)."""
    assert ctx.http is not None
    caller = await auth.authenticate(ctx.http, state.keys, required=state.config.router.auth)
    ctx.set_caller(caller)
