"""One ``response.create`` of a Responses WebSocket as a pipeline call: its own first steps, and what it keeps.

A ``response.create`` is a ``POST /v1/responses`` without the HTTP request
around it, so it goes through the same pipeline (``runner.stream_chunks``): the
request metrics, the key's rate limits, the replica choice and retries, the
finish hooks. Only the steps that read the HTTP request differ (``steps``):

- ``AuthenticateSocket``: the key presented at the handshake, looked up again
  for every response (a key revoked or re-limited meanwhile is treated as it
  is over HTTP);
- ``ParseCreate``: the message's fields are the request's (``type``,
  ``stream_id`` and ``stream`` are the socket's own: a create is always
  streamed);
- ``ContinueOnSocket`` (the route's ``prepare``): ``previous_response_id`` is
  looked up in the connection's own cache (``socket_cache``), then, with
  ``store`` true, in the response store as over HTTP; an id found in neither is
  a 400 ``previous_response_not_found``. The finished response is kept in the
  cache, and with ``store`` true stored before its ``response.completed`` is
  sent (``KeepResponse``, a finish hook).

A create with ``generate: false`` is a warm-up (Codex sends one before its first
turn): it is checked, admitted and counted like any other, and answers a
response with no output without asking a replica (``open_warm_up``: a
generation that only finishes), which a later create continues from by id
with only its new input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket

from fleetgate.core import events
from fleetgate.router import auth
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.dialects.responses.protocol import ResponsesRequest
from fleetgate.router.dialects.responses.routes import _store, begin_turn, stored_response
from fleetgate.router.dialects.responses.socket_cache import ConnectionCache
from fleetgate.router.dispatch import EventStream
from fleetgate.router.errors import ApiError, echoed, invalid_request
from fleetgate.router.pipeline import runner
from fleetgate.router.pipeline.context import RequestContext, Step
from fleetgate.router.pipeline.replica import dispatch
from fleetgate.router.response_store import ResponseStore, StoredResponse
from fleetgate.router.routing.policy import RoutingFacts
from fleetgate.router.state import RouterState
from fleetgate.v1 import replica_pb2 as pb

# Fields of a response.create that are the socket's, not the request's.
ENVELOPE_FIELDS = frozenset({"type", "stream_id", "stream", "generate"})


def steps(websocket: WebSocket, message: dict[str, Any], cache: ConnectionCache) -> list[Step]:
    """The pipeline steps of the ``response.create`` ``message`` received on ``websocket``."""
    opening = open_warm_up if message.get("generate") is False else dispatch
    return [AuthenticateSocket(websocket), ParseCreate(message),
            *runner.generation_steps(ContinueOnSocket(cache), dispatch_step=opening)]


def previous_response_not_found(response_id: str) -> ApiError:
    return invalid_request(f"Previous response with id {echoed(response_id)} not found.", "previous_response_id",
                           code="previous_response_not_found")


@dataclass(frozen=True)
class AuthenticateSocket:
    """Step: the caller of the socket's handshake headers (401 for a missing, unknown or revoked key)."""

    websocket: WebSocket

    async def __call__(self, ctx: RequestContext, state: RouterState) -> None:
        caller = await auth.authenticate(self.websocket, state.keys, required=state.config.router.auth)
        ctx.set_caller(caller)


@dataclass(frozen=True)
class ParseCreate:
    """Step: the message as the Responses request (400 naming the field), always streamed."""

    message: dict[str, Any]

    async def __call__(self, ctx: RequestContext, state: RouterState) -> None:
        body = {name: value for name, value in self.message.items() if name not in ENVELOPE_FIELDS}
        ctx.parsed = ctx.dialect.parse({**body, "stream": True})
        ctx.model = ctx.dialect.model_name(ctx.parsed)
        ctx.stream = True


@dataclass(frozen=True)
class ContinueOnSocket:
    """Step before translation: the response continued (the connection's cache, then the store), and the
    finished response kept (``KeepResponse``)."""

    cache: ConnectionCache

    async def __call__(self, ctx: RequestContext, state: RouterState) -> None:
        request: ResponsesRequest = ctx.parsed
        store = _store(state) if request.store else None
        previous = None
        if request.previous_response_id:
            previous = await self._previous(request.previous_response_id, ctx.key_id, store)
        await begin_turn(ctx, state, previous)
        ctx.finish_hooks.append(KeepResponse(self.cache, store))

    async def _previous(self, response_id: str, key_id: str, store: ResponseStore | None) -> StoredResponse:
        previous = self.cache.get(response_id)
        if previous is None and store is not None:
            previous = await store.get(response_id, key_id)
        if previous is None:
            raise previous_response_not_found(response_id)
        return previous


@dataclass(frozen=True)
class KeepResponse:
    """Finish hook: the finished response stored (with ``store`` true), then kept in the connection's cache."""

    cache: ConnectionCache
    store: ResponseStore | None

    async def __call__(self, completion: Completion, ctx: RequestContext) -> None:
        kept = stored_response(completion, ctx)
        if self.store is not None:
            await self.store.put(kept)
        self.cache.put(kept)


async def open_warm_up(ctx: RequestContext, state: RouterState) -> None:
    """Step in place of dispatch for a ``generate: false`` create: a generation without a replica."""
    assert ctx.request is not None
    ctx.event_stream = WarmUpStream(state.dispatcher, ctx.request, ctx.routing or RoutingFacts(ctx.request.model))


class WarmUpStream(EventStream):
    """The events of a warm-up: its one ``finish`` (nothing is generated, no replica is asked)."""

    async def _next(self) -> pb.GenerateEvent:
        if self._finished:
            raise StopAsyncIteration
        self._finished = True
        return events.finish(pb.Finish.REASON_STOP)
