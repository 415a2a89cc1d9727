"""Steps of an embeddings call after its replica is chosen: the unary ``Embed`` dispatch and the JSON answer.

``dispatch_embedding``: the dialect's ``EmbedRequest`` goes to the chosen replica
(``Dispatcher.embed``: one transparent retry on another replica when the first
fails or is overloaded; its refusals are the dialect's errors: a 400 naming the
field, 404, 503) while the client is watched: a client that goes away ends the
call (499; the cancelled call cancels the engine's work). ``answer_embeddings``:
the call is charged its input tokens (``router.pipeline.usage``: the key's ledger,
budgets and token window, as a generation's prompt), the key's fair-share account
learns them when the slot is released, and the dialect renders the body with the
call's rate-limit and replica headers.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from fleetgate.router.canonical.fold import Completion, UsageCounts
from fleetgate.router.dialects.embeddings.dialect import EmbeddingsDialect
from fleetgate.router.http_io import json_response
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.pipeline.fold import _wait_for_disconnect
from fleetgate.router.pipeline.usage import record_finished
from fleetgate.router.request_metrics import CLIENT_CLOSED
from fleetgate.router.state import RouterState
from fleetgate.v1 import replica_pb2 as pb


async def dispatch_embedding(ctx: RequestContext, state: RouterState) -> None:
    dialect = ctx.dialect
    assert isinstance(dialect, EmbeddingsDialect)
    assert ctx.request is not None and ctx.replica is not None and ctx.routing is not None
    request = dialect.embed_request(ctx.parsed, ctx.request)
    metadata = ctx.trace.grpc_metadata() if ctx.trace is not None else ()
    embedding = asyncio.ensure_future(state.dispatcher.embed(request, ctx.replica, ctx.routing, metadata))
    if not isinstance(ctx.http, Request):
        ctx.dialect_state = await embedding
        return
    disconnected = asyncio.ensure_future(_wait_for_disconnect(ctx.http))
    try:
        await asyncio.wait({embedding, disconnected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        disconnected.cancel()
        if not embedding.done():
            embedding.cancel()
    if embedding.cancelled():
        ctx.status = CLIENT_CLOSED
        return
    ctx.dialect_state = embedding.result()  # raises the replica's refusal as the dialect's error


async def answer_embeddings(ctx: RequestContext, state: RouterState) -> Response:
    """The JSON answer (its status recorded on the context)."""
    reply = ctx.dialect_state
    if not isinstance(reply, pb.EmbedResponse):  # the client went away while the replica worked
        return Response(status_code=CLIENT_CLOSED)
    dialect = ctx.dialect
    assert isinstance(dialect, EmbeddingsDialect)
    ctx.replica_id = reply.replica_id
    completion = ctx.completion = Completion(usage=UsageCounts(prompt_tokens=reply.prompt_tokens),
                                             usage_reported=True, finished=True, replica_id=reply.replica_id)
    ctx.status = 200
    await record_finished(ctx, state, completion)
    return json_response(dialect.render_embeddings(ctx.parsed, reply, ctx), headers=ctx.answer_headers())
