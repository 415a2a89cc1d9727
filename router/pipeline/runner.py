"""The request runner every dialect route uses: named steps over one ``RequestContext``, around a pure dialect.

``serve(http, dialect)`` runs, in order:

1. ``authenticate`` (401), ``parse`` (413, 400 naming the field): ``authenticate.py``, ``parse.py``;
2. the request's metrics start (``router.request_metrics``; in flight from here);
3. the route's own ``prepare`` step, if any (I/O a pure dialect cannot do: the
   Responses store loads the previous turn, an affinity hint, its store hook);
4. ``translate`` into the canonical request (404 unknown model, 400 images the model cannot take), then
   ``plan_server_tools``: what it asks of server-side tools checked (400 / 403; ``router.server_tools``);
5. ``admit`` against the key's rate limits (429; the limit headers on every answer), then into the model's
   admission queue (waits for a slot; 429 / Messages 529 when shed): ``admit.py``;
6. ``prepare_server_tools`` (MCP servers listed, approved calls run), then ``choose_replica`` and
   ``dispatch`` (503 with Retry-After, the replica's
   400 / 404 refusals, one retry before the first token): ``replica.py``;
7. the answer: fold the events and render the JSON (``fold.py``), or stream the
   dialect encoder's frames as server-sent events (below);
8. the finish hooks (``finish_hooks.py``), after the last event is folded and
   before the last frame or the JSON body is sent, then the call's usage charge
   (``usage.py``; a call that ends any other way is charged from the ``finally``).

The whole call is one generator (``_lifecycle``): it yields the answer once it
is known (a JSON response, or the start of a stream), then, for a stream, every
chunk of the body; its one ``finally`` closes the generation (the replica aborts
a call the client left) and records the request's metrics once, whatever the
exit. With tracing on (``router.tracing``) the call's trace begins before its first step, the traced steps
run in spans of their own, and the ``finally`` ends it.
A streamed call whose model loads just in time (``router.elastic``) starts its stream before the load (no
replica header then), sends the dialect's loading keepalive while it waits, and renders an error after that
point (the load's 503 ``model_load_timeout``, a shed, no replica) as the dialect's error frames.
Every answer after dispatch names the replica that served it in the
``x-fleetgate-replica`` header. A stream's response starts once the first output
is in hand (or after ``router.ping_interval_seconds``), so a transparent retry
before the first token is reflected in the header. A non-streaming call that
opted in gets the ``stats`` object (``router.canonical.stats``). Redis failing
anywhere in the call (the key lookup, ``prepare``, a finish hook) is a 503
``state_store_unavailable``.

``stream_chunks(ctx, state, steps)`` runs the same lifecycle for a streamed call
that has no HTTP response of its own (one ``response.create`` on the Responses
WebSocket, whose own first steps authenticate and parse, followed by
``generation_steps``) and yields its body's chunks.

``count_prompt_tokens(http, dialect)`` runs the authenticate / parse / translate
steps and asks a replica to count the prompt (Anthropic's ``count_tokens``).

``embed(http, dialect)`` serves an embeddings call (``/v1/embeddings``) through the
same lifecycle, steps 1. to 6. with the unary ``Embed`` as its dispatch
(``embed.py``: a 400 naming the field, 404, 503 like a generation's), so it is
authenticated, rate limited, admitted, routed, metered and charged (its input
tokens) like the rest; its answer is the dialect's JSON body, never a stream.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from fleetgate.core import events
from fleetgate.router.admission import ClientLeft
from fleetgate.router.canonical import ids, sse
from fleetgate.router.canonical.event_kinds import CONTENT_EVENTS
from fleetgate.router.canonical.fold import CompletionFolder
from fleetgate.router.dialects.base import Dialect
from fleetgate.router.errors import ApiError, state_store_unavailable, to_error_code
from fleetgate.router.pipeline.admit import admit, release_slot, take_slot
from fleetgate.router.pipeline.authenticate import authenticate
from fleetgate.router.pipeline.context import RequestContext, Step
from fleetgate.router.pipeline.embed import answer_embeddings, dispatch_embedding
from fleetgate.router.pipeline.finish_hooks import run_finish_hooks
from fleetgate.router.pipeline.fold import answer_json
from fleetgate.router.pipeline.parse import parse, translate
from fleetgate.router.pipeline.replica import choose_replica, dispatch
from fleetgate.router.pipeline.usage import record_unfinished
from fleetgate.router.server_tools.plan import plan_server_tools, prepare_server_tools
from fleetgate.router.state import RouterState, get_state
from fleetgate.router.stream_response import EventStreamResponse, FinalChunk, Keepalive
from fleetgate.v1 import replica_pb2 as pb

log = logging.getLogger("fleetgate.router.runner")

Answer = Callable[[RequestContext, RouterState], Awaitable[Response]]
"""The non-streamed answer of a call once its steps ran: the folded generation's JSON (``answer_json``) by
default, an embeddings body for ``embed``."""


async def serve(http: Request, dialect: Dialect[Any], *, prepare: Step | None = None) -> Response:
    """Serve one API call of ``dialect``; see the module docstring."""
    ctx = RequestContext(dialect=dialect, request_id=ids.new_request_id(), http=http)
    lifecycle = _lifecycle(ctx, get_state(http), [authenticate, parse, *generation_steps(prepare)])
    answer = await anext(lifecycle)
    if isinstance(answer, StreamStart):
        body = cast(AsyncIterator[bytes], lifecycle)  # the rest of the lifecycle: the body's chunks
        return EventStreamResponse(body, keepalive=answer.keepalive, media_type=sse.MEDIA_TYPE, headers=answer.headers)
    await lifecycle.aclose()
    assert isinstance(answer, Response)
    return answer


def generation_steps(prepare: Step | None = None, *, dispatch_step: Step = dispatch) -> list[Step]:
    """The steps after the caller is known and the request parsed (2. to 6. above); ``dispatch_step`` opens the
    generation (by default on the replica chosen; a Responses WebSocket warm-up opens one without a replica)."""
    own = [prepare] if prepare is not None else []
    return [start_metrics, *own, translate, plan_server_tools, admit, prepare_server_tools, choose_replica,
            dispatch_step]


async def stream_chunks(ctx: RequestContext, state: RouterState, steps: list[Step]) -> AsyncGenerator[bytes, None]:
    """One streamed call without an HTTP response around it (the Responses WebSocket): runs ``steps`` (the
    first ones authenticate and parse, ``ctx.stream`` set), then yields the chunks ``serve`` would send as the
    body. An error before the stream starts is raised, as ``serve`` raises it; closing the generator early (the
    client left) closes the generation, as a dropped SSE body does."""
    lifecycle = _lifecycle(ctx, state, steps)
    try:
        start = await anext(lifecycle)
        assert isinstance(start, StreamStart), "stream_chunks serves streamed calls only"
        async for chunk in lifecycle:
            yield cast(bytes, chunk)
    finally:
        await lifecycle.aclose()


async def count_prompt_tokens(http: Request, dialect: Dialect[Any]) -> int:
    """Prompt tokens of the request ``dialect`` parses from ``http``, counted by a replica (the same rendering as
    a generation's)."""
    state = get_state(http)
    ctx = RequestContext(dialect=dialect, request_id=ids.new_request_id(), http=http)
    for step in (authenticate, parse, translate):
        await step(ctx, state)
    assert ctx.request is not None
    return await state.dispatcher.count_tokens(ctx.request)


async def embed(http: Request, dialect: Dialect[Any]) -> Response:
    """Serve one embeddings call of ``dialect``; see the module docstring."""
    ctx = RequestContext(dialect=dialect, request_id=ids.new_request_id(), http=http)
    steps = [authenticate, parse, *generation_steps(dispatch_step=dispatch_embedding)]
    lifecycle = _lifecycle(ctx, get_state(http), steps, answer=answer_embeddings)
    answer = await anext(lifecycle)
    await lifecycle.aclose()
    assert isinstance(answer, Response)
    return answer


async def start_metrics(ctx: RequestContext, state: RouterState) -> None:
    """The request is valid and being served: its metrics start (in flight, per key name when configured)."""
    key_name = ctx.key_name if state.config.router.metrics_key_names else None
    ctx.observer.bind(state.model_label(ctx.model), ctx.stream, key_name)


@dataclass(frozen=True)
class StreamStart:
    """The head of a streamed answer; its body is the rest of the lifecycle."""

    headers: dict[str, str]
    keepalive: Keepalive | None


async def _stream_start(ctx: RequestContext, state: RouterState) -> StreamStart:
    """Wait for the first output (up to a ping interval: a retry before it is then reflected in the replica
    header), and make the dialect's encoder."""
    assert ctx.event_stream is not None
    ping_interval = state.config.router.ping_interval_seconds
    await ctx.event_stream.read_ahead(ping_interval)
    ctx.replica_id = ctx.event_stream.replica_id
    encoder = ctx.encoder = ctx.dialect.stream_encoder(ctx.parsed, ctx)
    keepalive = Keepalive(ping_interval, encoder.keepalive()) if encoder.wants_keepalive else None
    return StreamStart({**sse.HEADERS, **ctx.answer_headers()}, keepalive)


def _error_frames(ctx: RequestContext, err: ApiError) -> FinalChunk:
    """The last chunk of a stream that started before its model loaded and failed before its generation: the
    dialect's error frames for ``err``."""
    encoder = ctx.encoder or ctx.dialect.stream_encoder(ctx.parsed, ctx)
    failure = events.error(to_error_code(err), err.message)
    return FinalChunk(encoder.encode(failure, CompletionFolder().add(failure)) + encoder.close())


async def _lifecycle(
    ctx: RequestContext, state: RouterState, steps: list[Step], *, answer: Answer = answer_json
) -> AsyncGenerator[Response | StreamStart | bytes, None]:
    """The call from its first step to its end: yields the JSON answer (``answer``'s), or the stream's start then
    each chunk of its body (one write per event), the last one a ``FinalChunk``. An error before the answer is
    raised (the exception handlers render it); one while streaming ends the stream with the dialect's error
    frames."""
    if state.tracing is not None:  # tracing on (router.tracing): the call's spans, its steps run in theirs
        ctx.trace = state.tracing.begin(ctx)
        steps = ctx.trace.steps(steps)
    started_early = False  # the stream started before its model loaded (router.elastic)
    try:
        for step in steps:
            await step(ctx, state)
            if ctx.load_wait is not None:
                keepalive = Keepalive(state.config.router.ping_interval_seconds, ctx.dialect.loading_keepalive())
                yield StreamStart({**sse.HEADERS, **ctx.response_headers}, keepalive)
                started_early = True
                wait, ctx.load_wait = ctx.load_wait, None
                await wait
                await take_slot(ctx, state)
        if not ctx.stream:
            yield await answer(ctx, state)
            return
        start = await _stream_start(ctx, state)
        if not started_early:
            yield start

        # The body: the started frames share the first event's chunk when that event is already in hand, and
        # the finish frames share the closing frames' chunk, the final one (sent with the end of the response).
        stream, encoder = ctx.event_stream, ctx.encoder
        assert stream is not None and encoder is not None
        folder = CompletionFolder()
        ctx.completion = folder.completion
        observer = ctx.observer
        finished = False
        pending = b""  # frames not sent yet: they go out with the next chunk
        try:
            started = pb.GenerateEvent(started=stream.started)
            pending = encoder.encode(started, folder.add(started))
            if not stream.next_ready:
                yield pending
                pending = b""
            async for event in stream:
                kind = event.WhichOneof("event")
                if kind == "finish":
                    ctx.replica_id = stream.replica_id
                    finish_steps = folder.add(event, kind)
                    encoder.settle(finish_steps)
                    completion = folder.completion
                    hook_error = await run_finish_hooks(ctx, state, completion)
                    if hook_error is not None:
                        event = events.error(to_error_code(hook_error), hook_error.message)
                        finish_steps = [*finish_steps[:-1], event]
                    finished = True
                    pending += encoder.encode(event, finish_steps)
                    break
                if kind in CONTENT_EVENTS:
                    observer.content_event()
                chunk = pending + encoder.encode(event, folder.add(event, kind))
                pending = b""
                if chunk:
                    yield chunk
            closing = pending + encoder.close()
            pending = b""
            if closing:
                yield FinalChunk(closing)
            error = folder.completion.error
            ctx.status = error.status if error is not None else 200
        except Exception:
            log.exception("stream of request %s failed", ctx.request_id)
            ctx.status = 500
            if not finished:
                failure = events.error(pb.ERROR_CODE_INTERNAL, "The router failed while streaming the response")
                yield FinalChunk(pending + encoder.encode(failure, folder.add(failure)) + encoder.close())
    except RedisError as exc:
        err = ctx.fail(state_store_unavailable(state.config.router.retry_after_seconds))
        if not started_early:
            raise err from exc
        yield _error_frames(ctx, err)
    except ClientLeft:
        if not started_early:
            raise  # left the admission queue: a 499, not an error
    except ApiError as err:
        ctx.fail(err)
        if not started_early:
            raise
        yield _error_frames(ctx, err)
    except Exception:
        ctx.status = 500  # answered by the router's exception handlers
        raise
    finally:
        release_slot(ctx)
        if state.elastic is not None:
            state.elastic.finished(ctx.model, ctx.observer.ttft_seconds)
        if ctx.event_stream is not None:
            await ctx.event_stream.aclose()
        if ctx.routing is not None and ctx.replica_id:
            outcome = ctx.routing.outcome
            predicted = outcome.predicted_cached_share if outcome.replica_id == ctx.replica_id else None
            ctx.observer.served_by(ctx.replica_id, predicted)
        ctx.observer.finish(ctx.status, ctx.completion, ctx.error)
        if ctx.trace is not None:
            ctx.trace.end(ctx)
        record_unfinished(ctx, state)
