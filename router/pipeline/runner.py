"""The request runner every dialect route uses: the I/O around a pure dialect adapter.

``serve(request, dialect)`` does, in order: authenticate (401) → read the body
(413 over ``router.max_body_bytes``, 400 malformed JSON) → ``dialect.parse`` (400
naming the field) → ``dialect.to_canonical`` (or the route's ``prepare``) →
unknown model (404) and images the model cannot take (400) → dispatch (503 with
Retry-After, the replica's 400 / 404 refusals, one retry before the first token)
→ either fold the events and answer ``dialect.render_json`` or stream
``dialect.stream_encoder`` frames as server-sent events. It records the request's
metrics and, when the client goes away, cancels the gRPC call so the replica
aborts the engine request. Between translation and dispatch, the caller's key is
admitted against its rate limits (``router.rate_limit_store``: 429, and the
limit headers on every answer; not for ``count_prompt_tokens``).

Every answer after dispatch, JSON or SSE, names the replica that served it in
the ``x-fleetgate-replica`` header. A stream's response starts once the first
output is in hand (or after ``router.ping_interval_seconds``), so a transparent
retry before the first token is reflected in the header. A non-streaming call
that opted in gets the ``stats`` object (``router.canonical.stats``), timed
while the events are folded. Redis failing anywhere in the call (the key
lookup, ``prepare``, ``before_finish``) is a 503 ``state_store_unavailable``.

``prepare(parsed, call) -> Prepared`` is for dialects that need I/O around the
pure translation (the Responses store): it returns the canonical request, an
optional affinity replica, and an optional ``before_finish(completion, call)``
coroutine that runs after the last event is folded and before the last frame
(streaming) or the JSON body is sent. An ``ApiError`` raised there becomes the
call's error (the stream's error finish); any other exception a 500.

``count_prompt_tokens(request, dialect)`` runs the same auth / parse / translate
steps and asks a replica to count the prompt (Anthropic's ``count_tokens``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from fleetgate.core import events
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.router.auth import authenticate
from fleetgate.router.canonical import ids, sse
from fleetgate.router.canonical.content import check_images
from fleetgate.router.canonical.event_kinds import CONTENT_EVENTS, is_content
from fleetgate.router.canonical.fold import Completion, CompletionFolder
from fleetgate.router.canonical.stats import STATS_KEY, GenerationClock, wants_stats
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.dispatch import EventStream
from fleetgate.router.error_responses import error_response
from fleetgate.router.errors import ApiError, error_format_for_path, internal_error, state_store_unavailable, to_error_code
from fleetgate.router.http_io import REPLICA_HEADER, json_response, read_json_body
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.request_metrics import CLIENT_CLOSED, RequestMetrics
from fleetgate.router.state import RouterState, get_state
from fleetgate.router.stream_response import EventStreamResponse, FinalChunk, Keepalive

log = logging.getLogger("fleetgate.router.runner")

BeforeFinish = Callable[[Completion, RequestContext], Awaitable[None]]


@dataclass
class Prepared:
    """What a route hands the runner: the canonical request and optional routing / completion hooks."""

    request: pb.GenerateRequest
    affinity_replica: str | None = None
    before_finish: BeforeFinish | None = None


Prepare = Callable[[Any, RequestContext], Awaitable[Prepared]]


async def serve(http: Request, dialect: Dialect[Any], *, prepare: Prepare | None = None) -> Response:
    """Serve one API call of ``dialect``; see the module docstring."""
    state = get_state(http)
    call = RequestContext(dialect=dialect.name, request_id=ids.new_request_id())
    observer = RequestMetrics(dialect.name)
    clock = GenerationClock()
    try:
        parsed, prepared = await _accept(http, state, dialect, call, observer, prepare)
        fmt = error_format_for_path(http.url.path)
        prepared.before_finish = await state.rate_limiter.admit(call, fmt, prepared.before_finish)
        replica = state.dispatcher.choose_replica(prepared.request.model, affinity_replica=prepared.affinity_replica)
        stream = await state.dispatcher.open_stream(prepared.request, replica)
    except RedisError as exc:
        err = _state_store_error(state)
        observer.failed(err)
        raise err from exc
    except ApiError as err:
        observer.failed(err)
        raise
    if not call.stream:
        return await _respond_json(http, state, dialect, parsed, call, stream, prepared, observer, clock)
    try:
        await stream.read_ahead(state.config.router.ping_interval_seconds)
    except BaseException:
        await stream.aclose()
        observer.finish(CLIENT_CLOSED)
        raise
    call.replica_id = stream.replica_id
    encoder = dialect.stream_encoder(parsed, call)
    keepalive = Keepalive(state.config.router.ping_interval_seconds, encoder.keepalive()) if encoder.wants_keepalive else None
    frames = _stream_frames(state, encoder, stream, call, prepared, observer)
    return EventStreamResponse(frames, keepalive=keepalive, media_type=sse.MEDIA_TYPE,
                               headers={**sse.HEADERS, **_served_by(call)})


def _served_by(call: RequestContext) -> dict[str, str]:
    served = {REPLICA_HEADER: call.replica_id} if call.replica_id else {}
    return {**call.response_headers, **served}


def _state_store_error(state: RouterState) -> ApiError:
    return state_store_unavailable(state.config.router.retry_after_seconds)


async def count_prompt_tokens(http: Request, dialect: Dialect[Any]) -> int:
    """Prompt tokens of the request ``dialect`` parses from ``http``, counted by a replica (same rendering as generation)."""
    state = get_state(http)
    call = RequestContext(dialect=dialect.name, request_id=ids.new_request_id())
    _, prepared = await _accept(http, state, dialect, call, None, None)
    return await state.dispatcher.count_tokens(prepared.request)


async def _accept(
    http: Request,
    state: RouterState,
    dialect: Dialect[Any],
    call: RequestContext,
    observer: RequestMetrics | None,
    prepare: Prepare | None,
) -> tuple[Any, Prepared]:
    """Authenticate, parse and translate; the canonical request checked against the model."""
    settings = state.config.router
    caller = await authenticate(http, state.keys, required=settings.auth)
    call.key_id, call.key_name, call.key_limits = caller.key_id, caller.key_name, caller.limits
    body = await read_json_body(http, settings.max_body_bytes)
    call.wants_stats = wants_stats(http.headers, body)
    parsed = dialect.parse(body)
    call.model = dialect.model_name(parsed)
    call.stream = dialect.wants_stream(parsed)
    if observer is not None:
        observer.bind(state.model_label(call.model), call.stream, caller.key_name if settings.metrics_key_names else None)
    prepared = await prepare(parsed, call) if prepare is not None else Prepared(dialect.to_canonical(parsed, call))
    canonical = prepared.request
    canonical.request_id = call.request_id
    canonical.caller.key_id = call.key_id
    if not canonical.model:
        canonical.model = call.model
    view = state.registry.model(canonical.model)
    if view is None:
        raise state.dispatcher.unknown_model(canonical.model)
    check_images(canonical, accepts_images=view.capabilities.vision)
    return parsed, prepared


# ---------------------------------------------------------------- non-streaming


async def _respond_json(
    http: Request,
    state: RouterState,
    dialect: Dialect[Any],
    parsed: Any,
    call: RequestContext,
    stream: EventStream,
    prepared: Prepared,
    observer: RequestMetrics,
    clock: GenerationClock,
) -> Response:
    folding = asyncio.ensure_future(_fold(stream, clock))
    disconnected = asyncio.ensure_future(_wait_for_disconnect(http))
    try:
        await asyncio.wait({folding, disconnected}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        disconnected.cancel()
        if not folding.done():
            folding.cancel()
        await stream.aclose()
    if not folding.done() or folding.cancelled():
        observer.finish(CLIENT_CLOSED)
        return Response(status_code=CLIENT_CLOSED)
    completion = folding.result()
    call.replica_id = stream.replica_id
    await _run_before_finish(state, completion, call, prepared)
    if completion.error is not None:
        observer.finish(completion.error.status, completion)
        failed = error_response(completion.error, error_format_for_path(http.url.path))
        failed.headers.update(_served_by(call))
        return failed
    body = dialect.render_json(parsed, completion, call)
    if call.wants_stats:
        body[STATS_KEY] = clock.stats(completion, call.replica_id)
    observer.finish(200, completion)
    return json_response(body, headers=_served_by(call))


async def _fold(stream: EventStream, clock: GenerationClock) -> Completion:
    folder = CompletionFolder()
    folder.add(pb.GenerateEvent(started=stream.started))
    async for event in stream:
        if is_content(event):
            clock.output()
        folder.add(event)
    clock.finish()
    return folder.completion


async def _wait_for_disconnect(http: Request) -> None:
    """Returns when the client closes the connection (the body has been read already)."""
    while (await http.receive())["type"] != "http.disconnect":
        pass


# ---------------------------------------------------------------- streaming


async def _stream_frames(
    state: RouterState,
    encoder: StreamEncoder,
    stream: EventStream,
    call: RequestContext,
    prepared: Prepared,
    observer: RequestMetrics,
) -> AsyncIterator[bytes]:
    """The SSE body: one chunk (one write) per event; the ``started`` frames share the first event's
    chunk when that event is already in hand, and the finish frames share the closing frames' chunk,
    the final one (sent with the end of the response)."""
    folder = CompletionFolder()
    status = CLIENT_CLOSED
    finished = False
    # Frames not sent yet: they go out with the next chunk.
    pending = b""
    try:
        started = pb.GenerateEvent(started=stream.started)
        pending = encoder.encode(started, folder.add(started))
        if not stream.next_ready:
            yield pending
            pending = b""
        async for event in stream:
            kind = event.WhichOneof("event")
            if kind == "finish":
                call.replica_id = stream.replica_id
                steps = folder.add(event)
                encoder.settle(steps)
                completion = folder.completion
                if completion.error is None:
                    await _run_before_finish(state, completion, call, prepared)
                    if completion.error is not None:
                        event = events.error(to_error_code(completion.error), completion.error.message)
                        steps = [*steps[:-1], event]
                finished = True
            else:
                if kind in CONTENT_EVENTS:
                    observer.content_event()
                steps = folder.add(event)
            chunk = pending + encoder.encode(event, steps)
            pending = b""
            if finished:
                pending = chunk  # sent with the closing frames
            elif chunk:
                yield chunk
        closing = pending + encoder.close()
        pending = b""
        if closing:
            yield FinalChunk(closing)
        error = folder.completion.error
        status = error.status if error is not None else 200
    except Exception:
        log.exception("stream of request %s failed", call.request_id)
        status = 500
        if not finished:
            failure = events.error(pb.ERROR_CODE_INTERNAL, "The router failed while streaming the response")
            yield FinalChunk(pending + encoder.encode(failure, folder.add(failure)) + encoder.close())
    finally:
        await stream.aclose()
        observer.finish(status, folder.completion)


async def _run_before_finish(state: RouterState, completion: Completion, call: RequestContext, prepared: Prepared) -> None:
    """Run ``before_finish`` on a folded, successful ``completion``; a failure there turns it into an error."""
    if prepared.before_finish is None or completion.error is not None:
        return
    try:
        await prepared.before_finish(completion, call)
    except ApiError as err:
        completion.error = err
    except RedisError as exc:
        log.warning("before_finish of request %s: shared state store unavailable: %s", call.request_id, exc)
        completion.error = _state_store_error(state)
    except Exception:
        log.exception("before_finish failed for request %s", call.request_id)
        completion.error = internal_error("The router failed to finish the response")
    if completion.error is not None:
        completion.finish_reason = pb.Finish.REASON_ERROR
