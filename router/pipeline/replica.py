"""Steps: choose the replica to try first, then dispatch the canonical request to it (``router.dispatch``).

``choose_replica`` (404 for a model nobody serves, 503 with ``Retry-After`` when
no replica is healthy): the routing policy (``router.routing``) chooses among
the healthy replicas, given the request's model, the context's affinity hint and
session hint, and, for a policy that reads it, the prompt's prefix chain (which
then travels to the replica in ``GenerateRequest.prefix``, so the replica can
publish what its KV cache holds of it). ``dispatch``: the gRPC call opened and
its ``started`` event in hand (the replica's refusals: 400 context length, 404,
503), with one transparent retry on another replica before the first token; a
request with server-side tools gets a ``ToolLoop`` around it (``router.server_tools``).
"""

from __future__ import annotations

from fleetgate.router.dispatch import Generation
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.routing.policy import RoutingFacts
from fleetgate.router.routing.prefix_chain import prefix_chain
from fleetgate.router.server_tools.loop import ToolLoop
from fleetgate.router.state import RouterState


async def choose_replica(ctx: RequestContext, state: RouterState) -> None:
    request = ctx.request
    assert request is not None
    chain = None
    if state.routing.uses_prefix_chain:
        chain = prefix_chain(request, state.config.router.prefix_routing.block_bytes)
        request.prefix.CopyFrom(chain.to_proto())
    ctx.routing = RoutingFacts(request.model, ctx.affinity_replica, ctx.session_hint, request, chain)
    ctx.replica = await state.dispatcher.choose_replica(ctx.routing)


async def dispatch(ctx: RequestContext, state: RouterState) -> None:
    assert ctx.request is not None and ctx.replica is not None and ctx.routing is not None
    metadata = ctx.trace.grpc_metadata() if ctx.trace is not None else ()  # the traceparent (router.tracing)
    stream: Generation = await state.dispatcher.open_stream(ctx.request, ctx.replica, ctx.routing, metadata)
    # With server-side tools, the generation is a tool loop of turns (router.server_tools) that shows as one.
    if ctx.tool_plan is not None:
        stream = ToolLoop(stream, ctx.tool_plan, ctx, state, metadata)
    ctx.event_stream = stream
