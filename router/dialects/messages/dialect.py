"""The Anthropic Messages dialect adapter: the pure pieces the shared runner calls.

``MessagesDialect`` serves ``POST /v1/messages``; ``CountTokensDialect`` parses and
translates ``POST /v1/messages/count_tokens`` with the same prompt translation, so
the count is of exactly the prompt a real request renders. The public message id
is ``msg_<request id>``.
"""

from __future__ import annotations

from typing import Any

from fleetgate.v1 import replica_pb2 as pb
from fleetgate.router.canonical import ids, sse
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.segments import Step
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.dialects.messages import protocol as wire
from fleetgate.router.dialects.messages.request import generate_request, prompt_request
from fleetgate.router.dialects.messages.response import message_body
from fleetgate.router.dialects.messages.shape import AnthropicShape
from fleetgate.router.dialects.messages.stream import PING, MessageStreamBuilder

DIALECT_NAME = "messages"


class MessagesStreamEncoder(StreamEncoder):
    """SSE frames (``event: <type>``) of one streamed message, with ``ping`` while the model is quiet."""

    wants_keepalive = True

    def __init__(self, message_id: str, model: str) -> None:
        self._builder = MessageStreamBuilder(message_id, model)

    def encode(self, event: pb.GenerateEvent, steps: list[Step]) -> bytes:
        return sse.event_frames(self._builder.feed(steps))

    def keepalive(self) -> bytes:
        return sse.event_frame(*PING)


class MessagesDialect(AnthropicShape, Dialect[wire.MessagesRequest]):
    name = DIALECT_NAME
    wire_model = wire.MessagesRequest

    def model_name(self, request: wire.MessagesRequest) -> str:
        return request.model

    def wants_stream(self, request: wire.MessagesRequest) -> bool:
        return request.stream

    def to_canonical(self, request: wire.MessagesRequest, ctx: RequestContext) -> pb.GenerateRequest:
        return generate_request(request)

    def render_json(self, request: wire.MessagesRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        return message_body(ids.message_id(ctx.request_id), request.model, completion)

    def stream_encoder(self, request: wire.MessagesRequest, ctx: RequestContext) -> StreamEncoder:
        return MessagesStreamEncoder(ids.message_id(ctx.request_id), request.model)


class CountTokensDialect(AnthropicShape, Dialect[wire.CountTokensRequest]):
    """``/v1/messages/count_tokens``: parsed and translated like a message, never generated."""

    name = DIALECT_NAME
    wire_model = wire.CountTokensRequest

    def model_name(self, request: wire.CountTokensRequest) -> str:
        return request.model

    def wants_stream(self, request: wire.CountTokensRequest) -> bool:
        return False

    def to_canonical(self, request: wire.CountTokensRequest, ctx: RequestContext) -> pb.GenerateRequest:
        return prompt_request(request)

    def render_json(self, request: wire.CountTokensRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        raise NotImplementedError("count_tokens generates nothing; see count_tokens_body")

    def stream_encoder(self, request: wire.CountTokensRequest, ctx: RequestContext) -> StreamEncoder:
        raise NotImplementedError("count_tokens is never streamed")


def count_tokens_body(input_tokens: int) -> dict[str, Any]:
    """The ``MessageTokensCount`` body."""
    return {"input_tokens": input_tokens}


MESSAGES = MessagesDialect()
COUNT_TOKENS = CountTokensDialect()
