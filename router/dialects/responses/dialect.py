"""The Responses dialect adapter (pure): ties the wire models (``protocol.py``), the translation to the canonical
request (``request.py`` over ``conversation.py``), the response object (``response.py``) and the stream
(``stream.py``); the I/O (the response store) is in ``routes.py``.

The dialect is one shared object; what one call needs to remember is its
``ResponseTurn``, kept on the request context (``turn_of``). ``history`` is what
a ``previous_response_id`` inherited (set by the route, which does the store
I/O); ``to_canonical`` appends the request's own input to it, and
``conversation`` is then exactly what the model sees and what the store keeps.

The finished response is built once, by ``final_response``: for a stream it is
the stream encoder's own object (settled before the finish hooks run, so it can
be stored before ``response.completed`` is sent), otherwise the folded
``Completion`` replayed through a fresh builder. Either way items are made by
the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from openai.types.responses import Response

from fleetgate.core.config import RouterConfig
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.ids import response_id
from fleetgate.router.canonical.session_hints import SessionFields
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.dialects.openai_shape import OpenAIShape
from fleetgate.router.dialects.responses.conversation import ConversationItem, normalize_items
from fleetgate.router.dialects.responses.protocol import ResponsesRequest
from fleetgate.router.dialects.responses.request import to_generate_request
from fleetgate.router.dialects.responses.response import response_shell, to_json
from fleetgate.router.dialects.responses.server_tools import server_tool_request
from fleetgate.router.dialects.responses.stream import ResponseBuilder, ResponsesStreamEncoder, replay
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.sealing import REASONING, Sealer
from fleetgate.router.server_tools.declared import ServerToolRequest
from fleetgate.v1 import replica_pb2 as pb

# The ``include`` value that asks for reasoning items' ``encrypted_content``.
ENCRYPTED_REASONING = "reasoning.encrypted_content"


@dataclass
class ResponseTurn:
    """What one Responses call keeps while it runs (on the request context: the dialect itself is shared)."""

    # Inherited through previous_response_id; then that history plus this request's input.
    history: list[ConversationItem] = field(default_factory=list)
    conversation: list[ConversationItem] = field(default_factory=list)
    # The streamed answer's encoder, and the finished response once built.
    encoder: ResponsesStreamEncoder | None = None
    final: Response | None = None
    # Seals and opens this caller's encrypted reasoning and compactions (set by the route when needed).
    sealer: Sealer | None = None


def turn_of(ctx: RequestContext) -> ResponseTurn:
    """The call's ``ResponseTurn`` (made on first use)."""
    if ctx.dialect_state is None:
        ctx.dialect_state = ResponseTurn()
    assert isinstance(ctx.dialect_state, ResponseTurn)
    return ctx.dialect_state


class ResponsesDialect(OpenAIShape, Dialect[ResponsesRequest]):
    name = "responses"
    # /v1/responses/compact parses its own subclass of the request (compact.py).
    wire_model: ClassVar[type[ResponsesRequest]] = ResponsesRequest

    def model_name(self, request: ResponsesRequest) -> str:
        return request.model

    def wants_stream(self, request: ResponsesRequest) -> bool:
        return request.stream

    def to_canonical(
        self, request: ResponsesRequest, ctx: RequestContext, settings: RouterConfig
    ) -> pb.GenerateRequest:
        turn = turn_of(ctx)
        turn.conversation = [*turn.history, *normalize_items(request.items)]
        return to_generate_request(request, turn.conversation, ctx.request_id)

    def server_tools(self, request: ResponsesRequest, ctx: RequestContext) -> ServerToolRequest:
        return server_tool_request(request, turn_of(ctx).conversation)

    def session_fields(self, request: ResponsesRequest) -> SessionFields:
        return SessionFields(prompt_cache_key=request.prompt_cache_key, safety_identifier=request.safety_identifier,
                             user=request.user)

    def render_json(self, request: ResponsesRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        return to_json(self.final_response(request, completion, ctx))

    def stream_encoder(self, request: ResponsesRequest, ctx: RequestContext) -> StreamEncoder:
        encoder = turn_of(ctx).encoder = ResponsesStreamEncoder(_builder(request, ctx))
        return encoder

    def final_response(self, request: ResponsesRequest, completion: Completion, ctx: RequestContext) -> Response:
        """The finished response object (built once; see the module docstring)."""
        turn = turn_of(ctx)
        if turn.final is None:
            if turn.encoder is not None:
                turn.final = turn.encoder.response
            else:
                turn.final = replay(_builder(request, ctx), completion)
        return turn.final


def _builder(request: ResponsesRequest, ctx: RequestContext) -> ResponseBuilder:
    sealer = turn_of(ctx).sealer
    seal = None
    if sealer is not None and ENCRYPTED_REASONING in (request.include or ()):
        def seal(text: str) -> str:
            return sealer.seal(REASONING, text)
    return ResponseBuilder(response_shell(request, response_id(ctx.request_id), ctx.created), request.namespaces,
                           seal_reasoning=seal)


RESPONSES = ResponsesDialect()
