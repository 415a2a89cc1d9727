"""The Chat Completions dialect adapter (pure): wire model, canonical request, JSON and SSE rendering."""

from __future__ import annotations

from typing import Any

from fleetgate.v1 import replica_pb2 as pb
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.dialects.chat.protocol import ChatCompletionRequest
from fleetgate.router.dialects.chat.request import to_generate_request
from fleetgate.router.dialects.chat.response import ChatStreamEncoder, render_completion
from fleetgate.router.dialects.openai_shape import OpenAIShape


class ChatDialect(OpenAIShape, Dialect[ChatCompletionRequest]):
    name = "chat"
    wire_model = ChatCompletionRequest

    def to_canonical(self, request: ChatCompletionRequest, ctx: RequestContext) -> pb.GenerateRequest:
        return to_generate_request(request)

    def render_json(self, request: ChatCompletionRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        return render_completion(completion, ctx)

    def stream_encoder(self, request: ChatCompletionRequest, ctx: RequestContext) -> StreamEncoder:
        return ChatStreamEncoder(ctx, include_usage=request.include_usage)


CHAT = ChatDialect()
