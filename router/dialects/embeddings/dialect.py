"""The Embeddings dialect adapter (pure): the wire request (``protocol.py``) -> the replica's ``EmbedRequest``, and
its ``EmbedResponse`` -> OpenAI's ``CreateEmbeddingResponse`` body.

The pipeline runs it with ``runner.embed``: the canonical ``GenerateRequest`` it
translates to is only what key policy, admission and routing read (the model and,
filled in by the pipeline, the call's id, key and priority; no prompt, so no prefix
routing), and the call is never folded nor streamed. ``encoding_format: base64`` is
each vector's little-endian float32 bytes in base64 (what the ``openai`` SDK
decodes); usage counts the inputs' tokens (``prompt_tokens`` = ``total_tokens``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from fleetgate.core.config import RouterConfig
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.session_hints import SessionFields
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.dialects.embeddings.protocol import EmbeddingRequest, embed_inputs
from fleetgate.router.dialects.openai_shape import OpenAIShape
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.v1 import replica_pb2 as pb


class EmbeddingsDialect(OpenAIShape, Dialect[EmbeddingRequest]):
    name = "embeddings"
    task = "embed"
    wire_model = EmbeddingRequest

    def parse(self, body: Any) -> EmbeddingRequest:
        request = super().parse(body)
        request._inputs = embed_inputs(request.input)
        return request

    def wants_stream(self, request: EmbeddingRequest) -> bool:
        return False  # an embeddings answer is one JSON body, whatever the body says

    def to_canonical(
        self, request: EmbeddingRequest, ctx: RequestContext, settings: RouterConfig
    ) -> pb.GenerateRequest:
        return pb.GenerateRequest(model=request.model)

    def embed_request(self, request: EmbeddingRequest, canonical: pb.GenerateRequest) -> pb.EmbedRequest:
        """The replica's request: the inputs in order, with the canonical request's id, model, key and priority."""
        return pb.EmbedRequest(request_id=canonical.request_id, model=canonical.model, inputs=request.inputs,
                               dimensions=request.dimensions or 0, caller=canonical.caller,
                               priority=canonical.priority)

    def session_fields(self, request: EmbeddingRequest) -> SessionFields:
        return SessionFields(user=request.user)

    def render_embeddings(
        self, request: EmbeddingRequest, reply: pb.EmbedResponse, ctx: RequestContext
    ) -> dict[str, Any]:
        data = [{"object": "embedding", "index": index, "embedding": _encoded(item.values, request.encoding_format)}
                for index, item in enumerate(reply.embeddings)]
        usage = {"prompt_tokens": reply.prompt_tokens, "total_tokens": reply.prompt_tokens}
        return {"object": "list", "data": data, "model": ctx.model, "usage": usage}

    def render_json(self, request: EmbeddingRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        raise NotImplementedError("an embeddings call is answered by render_embeddings (runner.embed)")

    def stream_encoder(self, request: EmbeddingRequest, ctx: RequestContext) -> StreamEncoder:
        raise NotImplementedError("an embeddings call is never streamed")


def _encoded(values: Any, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")
    return list(values)


EMBEDDINGS = EmbeddingsDialect()
