"""The Anthropic Messages dialect adapter (pure): ties the wire models (``protocol.py``), the translation to
the canonical request (``request.py``), the JSON answer (``response.py``), the stream (``stream.py``) and
Anthropic's error shape (``shape.py``).

``MessagesDialect`` serves ``POST /v1/messages``; ``CountTokensDialect`` parses and
translates ``POST /v1/messages/count_tokens`` with the same prompt translation, so
the count is of exactly the prompt a real request renders (Claude Code's billing
header handled per ``router.claude_code_billing_header`` in both). A message's
session hint is its ``metadata.user_id`` (``router.canonical.session_hints``). The
public message id is ``msg_<request id>``.
"""

from __future__ import annotations

from typing import Any

from fleetgate.core.config import RouterConfig
from fleetgate.router.canonical import ids, sse
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.session_hints import SessionFields
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.dialects.messages import protocol as wire
from fleetgate.router.dialects.messages.request import anthropic_server_tools, generate_request, prompt_request
from fleetgate.router.dialects.messages.response import message_body
from fleetgate.router.dialects.messages.shape import AnthropicShape
from fleetgate.router.dialects.messages.stream import PING, MessagesStreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.server_tools.declared import ServerToolRequest
from fleetgate.v1 import replica_pb2 as pb

DIALECT_NAME = "messages"


class MessagesDialect(AnthropicShape, Dialect[wire.MessagesRequest]):
    name = DIALECT_NAME
    wire_model = wire.MessagesRequest

    def model_name(self, request: wire.MessagesRequest) -> str:
        return request.model

    def wants_stream(self, request: wire.MessagesRequest) -> bool:
        return request.stream

    def to_canonical(
        self, request: wire.MessagesRequest, ctx: RequestContext, settings: RouterConfig
    ) -> pb.GenerateRequest:
        return generate_request(request, settings.claude_code_billing_header)

    def server_tools(self, request: wire.MessagesRequest, ctx: RequestContext) -> ServerToolRequest | None:
        return request.server_tool_request(anthropic_server_tools(request.tools or []))

    def session_fields(self, request: wire.MessagesRequest) -> SessionFields:
        return SessionFields(anthropic_user_id=request.metadata.user_id if request.metadata else None)

    def render_json(self, request: wire.MessagesRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        return message_body(ids.message_id(ctx.request_id), request.model, completion)

    def stream_encoder(self, request: wire.MessagesRequest, ctx: RequestContext) -> StreamEncoder:
        return MessagesStreamEncoder(ids.message_id(ctx.request_id), request.model)

    def loading_keepalive(self) -> bytes:
        return sse.event_frame(*PING)  # Anthropic's `ping`, as while the model is quiet


class CountTokensDialect(AnthropicShape, Dialect[wire.CountTokensRequest]):
    """``/v1/messages/count_tokens``: parsed and translated like a message, never generated."""

    name = DIALECT_NAME
    wire_model = wire.CountTokensRequest

    def model_name(self, request: wire.CountTokensRequest) -> str:
        return request.model

    def wants_stream(self, request: wire.CountTokensRequest) -> bool:
        return False

    def to_canonical(
        self, request: wire.CountTokensRequest, ctx: RequestContext, settings: RouterConfig
    ) -> pb.GenerateRequest:
        return prompt_request(request, settings.claude_code_billing_header)

    def render_json(
        self, request: wire.CountTokensRequest, completion: Completion, ctx: RequestContext
    ) -> dict[str, Any]:
        raise NotImplementedError("count_tokens generates nothing; see count_tokens_body")

    def stream_encoder(self, request: wire.CountTokensRequest, ctx: RequestContext) -> StreamEncoder:
        raise NotImplementedError("count_tokens is never streamed")


MESSAGES = MessagesDialect()
COUNT_TOKENS = CountTokensDialect()
