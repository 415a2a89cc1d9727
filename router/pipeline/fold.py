"""Step: a non-streamed answer: fold the events while watching the client, run the finish hooks, render the JSON.

The events are folded into one ``Completion`` (timed by the context's
``GenerationClock`` for the opt-in ``stats`` object) while the client is
watched: a client that goes away ends the call (status 499; the pipeline then
closes the generation, and the replica aborts it). The
finish hooks then run; a completion with an error is answered as that error in
the dialect's shape, any other with ``dialect.render_json`` (plus ``stats``
when asked for). Both name the replica that served the call and carry the
call's rate-limit headers.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from fleetgate.router.canonical.event_kinds import CONTENT_EVENTS
from fleetgate.router.canonical.fold import Completion, CompletionFolder
from fleetgate.router.canonical.stats import STATS_KEY, GenerationClock
from fleetgate.router.dispatch import Generation
from fleetgate.router.error_responses import error_response
from fleetgate.router.http_io import json_response
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.pipeline.finish_hooks import run_finish_hooks
from fleetgate.router.request_metrics import CLIENT_CLOSED
from fleetgate.router.state import RouterState
from fleetgate.v1 import replica_pb2 as pb


async def answer_json(ctx: RequestContext, state: RouterState) -> Response:
    """The JSON answer of the call (its status recorded on the context)."""
    assert ctx.http is not None and ctx.event_stream is not None
    stream = ctx.event_stream
    folder = CompletionFolder()
    ctx.completion = folder.completion  # as far as it got, should the client leave (its usage is charged)
    folding = asyncio.ensure_future(_fold(stream, folder, ctx.clock))
    disconnected = asyncio.ensure_future(_wait_for_disconnect(ctx.http))
    try:
        await asyncio.wait({folding, disconnected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        disconnected.cancel()
        if not folding.done():
            folding.cancel()
    if not folding.done() or folding.cancelled():
        ctx.status = CLIENT_CLOSED
        return Response(status_code=CLIENT_CLOSED)
    completion = ctx.completion = folding.result()
    ctx.replica_id = stream.replica_id
    await run_finish_hooks(ctx, state, completion)
    if completion.error is not None:
        ctx.status = completion.error.status
        failed = error_response(completion.error, ctx.dialect)
        failed.headers.update(ctx.answer_headers())
        return failed
    body = ctx.dialect.render_json(ctx.parsed, completion, ctx)
    if ctx.wants_stats:
        body[STATS_KEY] = ctx.clock.stats(completion, ctx.replica_id)
    ctx.status = 200
    return json_response(body, headers=ctx.answer_headers())


async def _fold(stream: Generation, folder: CompletionFolder, clock: GenerationClock) -> Completion:
    folder.add(pb.GenerateEvent(started=stream.started))
    async for event in stream:
        kind = event.WhichOneof("event")
        if kind in CONTENT_EVENTS:
            clock.output()
        folder.add(event, kind)
    clock.finish()
    return folder.completion


async def _wait_for_disconnect(http: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while (await http.receive())["type"] != "http.disconnect":
        pass
