"""HTTP routes of the Responses API, the only Responses module that does I/O (the response store).

- ``POST /v1/responses``: through the shared runner. ``previous_response_id`` is
  loaded first (404 when unknown, expired or another key's, before any stream
  starts); its conversation becomes the history and its replica the affinity
  hint. With ``store`` (the default) the finished response is written to Redis
  before the last frame / the JSON body is sent. Sealed items the client sends
  back (encrypted reasoning, compactions) are opened first (``sealed_items``), and
  with ``include: ["reasoning.encrypted_content"]`` the answer's reasoning is sealed.
- ``POST /v1/responses/compact``: the conversation summarised by the model into one
  sealed ``compaction`` item (``compact.py``).
- ``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}``,
  ``GET /v1/responses/{id}/input_items`` (``limit``, ``order``, ``after``).

Like every dialect, a create names the replica that served it in
``x-fleetgate-replica`` (set by the runner); ``GET`` names the replica that
produced the stored response. A Redis failure is a 503 in OpenAI's error shape
(``router.errors.state_store_unavailable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Query, Request
from starlette.responses import Response

from fleetgate.router.auth import authenticate
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.dialects.responses.compact import COMPACT
from fleetgate.router.dialects.responses.dialect import ENCRYPTED_REASONING, RESPONSES, turn_of
from fleetgate.router.dialects.responses.listing import DEFAULT_LIMIT, MAX_LIMIT, item_page
from fleetgate.router.dialects.responses.protocol import ResponsesRequest
from fleetgate.router.dialects.responses.response import to_json
from fleetgate.router.dialects.responses.sealed_items import has_sealed_items, open_sealed_items
from fleetgate.router.error_responses import dialect_router
from fleetgate.router.errors import echoed, not_found
from fleetgate.router.http_io import REPLICA_HEADER, json_response
from fleetgate.router.pipeline import runner
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.response_store import ResponseStore, StoredResponse
from fleetgate.router.sealing import Sealer, deployment_key
from fleetgate.router.state import RouterState, get_state

routes = dialect_router(RESPONSES)


def _store(state: RouterState) -> ResponseStore:
    return ResponseStore(state.redis, state.config.router.responses_ttl_seconds)


async def _load(state: RouterState, response_id: str, key_id: str, param: str | None = None) -> StoredResponse:
    """The stored response of this key; 404 when there is none (or it is another key's)."""
    stored = await _store(state).get(response_id, key_id)
    if stored is None:
        raise not_found(f"No response with id {echoed(response_id)} found (unknown, expired, deleted or not stored)",
                        param)
    return stored


@routes.post("/v1/responses")
async def create_response(http: Request) -> Response:
    return await runner.serve(http, RESPONSES, prepare=load_previous_turn)


async def load_previous_turn(ctx: RequestContext, state: RouterState) -> None:
    """The pipeline step before translation: the history and replica of ``previous_response_id`` (404 when
    there is none for this key), and the store write as a finish hook unless ``store`` is false."""
    request: ResponsesRequest = ctx.parsed
    previous = None
    if request.previous_response_id:
        previous = await _load(state, request.previous_response_id, ctx.key_id, "previous_response_id")
    await begin_turn(ctx, state, previous)
    if request.store:
        ctx.finish_hooks.append(StoreResponse(_store(state)))


async def begin_turn(ctx: RequestContext, state: RouterState, previous: StoredResponse | None) -> None:
    """What every create does before translation, wherever it found the response it continues (the store, or
    a WebSocket's own cache): ``previous``'s conversation becomes the history and its replica the affinity
    hint; sealed items sent back are opened, and a sealer kept when the answer's reasoning is to be sealed."""
    request: ResponsesRequest = ctx.parsed
    if previous is not None:
        turn_of(ctx).history = previous.conversation
        ctx.affinity_replica = previous.replica_id or None
    items = request.items
    if ENCRYPTED_REASONING in (request.include or ()) or has_sealed_items(items):
        key = await deployment_key(state.config.router.sealing_secret, state.redis)
        sealer = turn_of(ctx).sealer = Sealer(key, ctx.key_id)
        open_sealed_items(items, sealer)


@routes.post("/v1/responses/compact")
async def compact_conversation(http: Request) -> Response:
    return await runner.serve(http, COMPACT, prepare=prepare_compaction)


async def prepare_compaction(ctx: RequestContext, state: RouterState) -> None:
    """The compact call's step before translation: the conversation as for a turn, and always a sealer."""
    await load_previous_turn(ctx, state)
    turn = turn_of(ctx)
    if turn.sealer is None:
        turn.sealer = Sealer(await deployment_key(state.config.router.sealing_secret, state.redis), ctx.key_id)


@dataclass(frozen=True)
class StoreResponse:
    """Finish hook: the finished response, the conversation it continues, its key and replica, stored."""

    store: ResponseStore

    async def __call__(self, completion: Completion, ctx: RequestContext) -> None:
        await self.store.put(stored_response(completion, ctx))


def stored_response(completion: Completion, ctx: RequestContext) -> StoredResponse:
    """The finished response as it is kept: with the conversation it continues, its key and its replica."""
    response = RESPONSES.final_response(ctx.parsed, completion, ctx)
    return StoredResponse(id=response.id, key_id=ctx.key_id, replica_id=ctx.replica_id,
                          input=turn_of(ctx).conversation, response=to_json(response))


@routes.get("/v1/responses/{response_id}")
async def retrieve_response(http: Request, response_id: str) -> Response:
    state = get_state(http)
    caller = await authenticate(http, state.keys, required=state.config.router.auth)
    stored = await _load(state, response_id, caller.key_id)
    return json_response(stored.response, headers={REPLICA_HEADER: stored.replica_id} if stored.replica_id else None)


@routes.delete("/v1/responses/{response_id}")
async def delete_response(http: Request, response_id: str) -> Response:
    state = get_state(http)
    caller = await authenticate(http, state.keys, required=state.config.router.auth)
    if not await _store(state).delete(response_id, caller.key_id):
        raise not_found(f"No response with id {echoed(response_id)} found")
    return json_response({"id": response_id, "object": "response.deleted", "deleted": True})


@routes.get("/v1/responses/{response_id}/input_items")
async def list_input_items(
    http: Request,
    response_id: str,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Response:
    state = get_state(http)
    caller = await authenticate(http, state.keys, required=state.config.router.auth)
    stored = await _load(state, response_id, caller.key_id)
    return json_response(item_page(stored.input, limit=limit, order=order, after=after))
