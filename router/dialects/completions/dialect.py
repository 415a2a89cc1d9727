"""The Completions dialect adapter (pure): a raw prompt in (``raw_prompt``, no template), text out.

Ties the wire model (``protocol.py``), the translation to the canonical request
(``request.py``), the JSON answer (``response.py``) and the stream (``stream.py``).
"""

from __future__ import annotations

from typing import Any

from fleetgate.core.config import RouterConfig
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.session_hints import SessionFields
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.dialects.completions.protocol import CompletionRequest
from fleetgate.router.dialects.completions.request import to_generate_request
from fleetgate.router.dialects.completions.response import render_completion
from fleetgate.router.dialects.completions.stream import CompletionStreamEncoder
from fleetgate.router.dialects.openai_shape import OpenAIShape
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.v1 import replica_pb2 as pb


class CompletionsDialect(OpenAIShape, Dialect[CompletionRequest]):
    name = "completions"
    wire_model = CompletionRequest

    def to_canonical(
        self, request: CompletionRequest, ctx: RequestContext, settings: RouterConfig
    ) -> pb.GenerateRequest:
        return to_generate_request(request)

    def session_fields(self, request: CompletionRequest) -> SessionFields:
        return SessionFields(user=request.user)

    def render_json(self, request: CompletionRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        return render_completion(completion, ctx)

    def stream_encoder(self, request: CompletionRequest, ctx: RequestContext) -> StreamEncoder:
        return CompletionStreamEncoder(ctx, include_usage=request.include_usage)


COMPLETIONS = CompletionsDialect()
