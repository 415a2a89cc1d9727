"""WebSocket mode of the Responses API: ``GET /v1/responses`` upgraded, as OpenAI's Responses WebSocket works.

- The client authenticates at the handshake (``Authorization: Bearer`` or
  ``x-api-key``, the same key checks as HTTP; anyone with ``router.auth`` off).
  A refused key is an ``error`` event (401), then the socket is closed with
  1008 (policy violation); so is a key refused later, on a response.
- The client sends ``{"type": "response.create", ...}`` messages, the fields of
  a ``POST /v1/responses`` body; each is one call through the request pipeline
  (``socket_turn``): the same metrics, rate limits, admission and replicas as
  HTTP. The server sends exactly the events the SSE stream has, one JSON text
  message each (``socket_frames``). Several responses go one after another on
  one socket: messages are answered in the order they arrive (a client may send
  the next before the last is done), one at a time.
- An error is an ``error`` event (``{"type": "error", "status", "error": {...}}``)
  and the socket stays usable: before a response starts (the errors HTTP
  answers with a status), for a message that is not JSON, too large
  (``router.max_body_bytes``) or not a ``response.create``; a failure once a
  response has started ends it as on SSE (``error``, ``response.failed``).
  ``{"type": "response.processed"}`` (Codex's acknowledgement) is accepted and
  ignored. Messages that are not ``response.create`` are not calls: they are
  not counted in the request metrics.
- ``previous_response_id`` continues from the connection's own cache of the
  responses it made (``socket_cache``: kept in this process's memory while the
  socket is open, never shared), so ``store: false`` works across turns; with
  ``store`` true the response store is read as over HTTP. An unknown id is a
  400 ``previous_response_not_found``; a response that continued an id and
  failed evicts that id from the cache.
- A client that disconnects while a response streams aborts it as on SSE: the
  generation is closed (the replica's gRPC call cancelled) and the call recorded
  as 499.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Any

import orjson
from fastapi import APIRouter
from redis.exceptions import RedisError
from starlette.websockets import WebSocket, WebSocketDisconnect

from fleetgate.router import auth
from fleetgate.router.canonical import ids
from fleetgate.router.dialects.responses import socket_turn
from fleetgate.router.dialects.responses.dialect import RESPONSES
from fleetgate.router.dialects.responses.socket_cache import ConnectionCache
from fleetgate.router.dialects.responses.socket_frames import error_message, event_messages, lane_of
from fleetgate.router.errors import (
    ApiError,
    ErrorKind,
    internal_error,
    invalid_request,
    request_too_large,
    state_store_unavailable,
)
from fleetgate.router.pipeline import runner
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.state import RouterState, get_state

log = logging.getLogger("fleetgate.router.responses.websocket")

routes = APIRouter()

# Close codes (RFC 6455): the key was refused; the router failed (Redis unreachable at the handshake).
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
# Messages received and not answered yet, past which the client is sending faster than it reads.
MAX_QUEUED_MESSAGES = 32


@routes.websocket("/v1/responses")
async def responses_websocket(websocket: WebSocket) -> None:
    await ResponsesSocket(websocket, get_state(websocket)).run()


class ResponsesSocket:
    """One WebSocket connection: its handshake, its messages in order, and its cache of responses."""

    def __init__(self, websocket: WebSocket, state: RouterState) -> None:
        self.websocket = websocket
        self.state = state
        self.cache = ConnectionCache()

    async def run(self) -> None:
        try:
            await auth.authenticate(self.websocket, self.state.keys, required=self.state.config.router.auth)
        except ApiError as err:
            return await self._refuse(err, POLICY_VIOLATION)
        except RedisError as exc:
            log.warning("WebSocket handshake: shared state store unavailable: %s", exc)
            return await self._refuse(state_store_unavailable(self.state.config.router.retry_after_seconds),
                                      INTERNAL_ERROR)
        await self.websocket.accept()
        inbox: asyncio.Queue[str | bytes] = asyncio.Queue(MAX_QUEUED_MESSAGES)
        reader = asyncio.ensure_future(self._read(inbox))
        try:
            overflow = await self._answer_in_order(inbox, reader)
        finally:
            reader.cancel()
        if overflow is not None:
            await self._close(POLICY_VIOLATION, overflow)

    async def _refuse(self, err: ApiError, code: int) -> None:
        await self.websocket.accept()
        await self.websocket.send_text(error_message(err, RESPONSES))
        await self._close(code, err.message)

    async def _close(self, code: int, reason: str) -> None:
        try:
            await self.websocket.close(code, reason[:120])
        except (WebSocketDisconnect, RuntimeError):
            pass  # the client is gone already

    async def _read(self, inbox: asyncio.Queue[str | bytes]) -> str | None:
        """Queue every message until the client disconnects (None), or sends too many unanswered ones (why)."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            if inbox.full():
                return f"more than {MAX_QUEUED_MESSAGES} messages waiting for an answer"
            inbox.put_nowait(message.get("text") or message.get("bytes") or "")

    async def _answer_in_order(
        self, inbox: asyncio.Queue[str | bytes], reader: asyncio.Future[str | None]
    ) -> str | None:
        """Answer the queued messages one at a time until the reader stops (its reason to close, if any) or an
        answer ends the socket (None). A response still streaming when the reader stops is cancelled: its
        generation is closed, as when an SSE client leaves."""
        while True:
            receiving = asyncio.ensure_future(inbox.get())
            await _first_done(receiving, reader)
            if not receiving.done():
                receiving.cancel()
                return reader.result()
            answering = asyncio.ensure_future(self._answer(receiving.result()))
            await _first_done(answering, reader)
            if not answering.done():
                answering.cancel()
                await asyncio.gather(answering, return_exceptions=True)
                return reader.result()
            if not answering.result():
                return None

    async def _answer(self, raw: str | bytes) -> bool:
        """Answer one message; False when the socket is to end (the client left, or its key was refused)."""
        try:
            message = self._decode(raw)
            if message.get("type") == "response.processed":
                return True
            lane = lane_of(message)
        except ApiError as err:
            return await self._send_error(err, None)
        return await self._create(message, lane)

    def _decode(self, raw: str | bytes) -> dict[str, Any]:
        limit = self.state.config.router.max_body_bytes
        if len(raw) > limit:
            raise request_too_large(limit)
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise invalid_request(f"The message is not valid JSON: {exc}") from None
        if not isinstance(message, dict):
            raise invalid_request("A message must be a JSON object with a type")
        kind = message.get("type")
        if kind not in ("response.create", "response.processed"):
            raise invalid_request(f"Unsupported message type {kind!r}: send response.create", "type")
        return message

    async def _create(self, message: dict[str, Any], lane: str | None) -> bool:
        """One response: its events sent as they come; the id it continued evicted from the cache if it failed."""
        ctx = RequestContext(dialect=RESPONSES, request_id=ids.new_request_id())
        keep_going = True
        try:
            chunks = runner.stream_chunks(ctx, self.state, socket_turn.steps(self.websocket, message, self.cache))
            async with aclosing(chunks):
                async for chunk in chunks:
                    for event in event_messages(chunk, lane):
                        await self.websocket.send_text(event)
        except WebSocketDisconnect:
            keep_going = False
        except ApiError as err:
            keep_going = await self._send_error(err, lane)
        except Exception:
            log.exception("WebSocket response %s failed", ctx.request_id)
            keep_going = await self._send_error(internal_error(), lane)
        previous = message.get("previous_response_id")
        if ctx.status != 200 and isinstance(previous, str):
            self.cache.evict(previous)
        return keep_going

    async def _send_error(self, err: ApiError, lane: str | None) -> bool:
        """Send ``err`` as an error event; False when the socket is to end (a refused key, a client gone)."""
        try:
            await self.websocket.send_text(error_message(err, RESPONSES, lane))
        except WebSocketDisconnect:
            return False
        if err.kind == ErrorKind.AUTHENTICATION:
            await self._close(POLICY_VIOLATION, err.message)
            return False
        return True


async def _first_done(*futures: asyncio.Future[Any]) -> None:
    """Until one of ``futures`` is done."""
    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
