"""The Chat Completions dialect adapter (pure): ties the wire model (``protocol.py``), the translation to the
canonical request (``request.py``), the JSON answer (``response.py``) and the stream (``stream.py``)."""

from __future__ import annotations

from typing import Any

from fleetgate.core.config import RouterConfig
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.session_hints import SessionFields
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.dialects.chat.protocol import ChatCompletionRequest
from fleetgate.router.dialects.chat.request import to_generate_request
from fleetgate.router.dialects.chat.response import render_completion
from fleetgate.router.dialects.chat.stream import ChatStreamEncoder
from fleetgate.router.dialects.openai_shape import OpenAIShape
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.server_tools.declared import ServerToolRequest
from fleetgate.v1 import replica_pb2 as pb


class ChatDialect(OpenAIShape, Dialect[ChatCompletionRequest]):
    name = "chat"
    wire_model = ChatCompletionRequest

    def to_canonical(
        self, request: ChatCompletionRequest, ctx: RequestContext, settings: RouterConfig
    ) -> pb.GenerateRequest:
        return to_generate_request(request)

    def server_tools(self, request: ChatCompletionRequest, ctx: RequestContext) -> ServerToolRequest | None:
        return request.server_tool_request()

    def session_fields(self, request: ChatCompletionRequest) -> SessionFields:
        return SessionFields(prompt_cache_key=request.prompt_cache_key, safety_identifier=request.safety_identifier,
                             user=request.user)

    def render_json(
        self, request: ChatCompletionRequest, completion: Completion, ctx: RequestContext
    ) -> dict[str, Any]:
        return render_completion(completion, ctx)

    def stream_encoder(self, request: ChatCompletionRequest, ctx: RequestContext) -> StreamEncoder:
        return ChatStreamEncoder(ctx, include_usage=request.include_usage)


CHAT = ChatDialect()
