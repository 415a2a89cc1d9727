"""The Responses dialect adapter (pure): plugs the Responses translation into the shared runner.

One ``ResponsesDialect`` per API call (it carries the call's conversation and its
stream builder). ``history`` is what a ``previous_response_id`` inherited (set
by the route, which does the store I/O); ``to_canonical`` appends the request's
own input to it, and ``conversation`` is then exactly what the model sees and
what the store keeps.

The finished response is built once, by ``final_response``: for a stream it is
the stream builder's own object (settled early, so it can be stored before
``response.completed`` is sent), otherwise the folded ``Completion`` replayed
through a fresh builder. Either way items are made by the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

from openai.types.responses import Response

from fleetgate.core import events
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.router.canonical import sse
from fleetgate.router.canonical.sse import NamedEvent
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.ids import response_id
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.dialects.responses.conversation import ConversationItem, normalize_items
from fleetgate.router.dialects.responses.protocol import ResponsesRequest
from fleetgate.router.dialects.responses.request import to_generate_request
from fleetgate.router.dialects.responses.response import response_shell, to_json
from fleetgate.router.dialects.responses.stream import ResponseBuilder
from fleetgate.router.errors import from_error_code


class ResponsesDialect(Dialect[ResponsesRequest]):
    name = "responses"
    wire_model = ResponsesRequest

    def __init__(self, history: Sequence[ConversationItem] = ()) -> None:
        self.history: list[ConversationItem] = list(history)
        self.conversation: list[ConversationItem] = []
        self._encoder: ResponsesStreamEncoder | None = None
        self._final: Response | None = None

    def model_name(self, request: ResponsesRequest) -> str:
        return request.model

    def wants_stream(self, request: ResponsesRequest) -> bool:
        return request.stream

    def to_canonical(self, request: ResponsesRequest, ctx: RequestContext) -> pb.GenerateRequest:
        self.conversation = [*self.history, *normalize_items(request.items)]
        return to_generate_request(request, self.conversation, ctx.request_id)

    def render_json(self, request: ResponsesRequest, completion: Completion, ctx: RequestContext) -> dict:
        return to_json(self.final_response(request, completion, ctx))

    def stream_encoder(self, request: ResponsesRequest, ctx: RequestContext) -> StreamEncoder:
        self._encoder = ResponsesStreamEncoder(_builder(request, ctx))
        return self._encoder

    def final_response(self, request: ResponsesRequest, completion: Completion, ctx: RequestContext) -> Response:
        """The finished response object (built once; see the module docstring)."""
        if self._final is None:
            if self._encoder is not None:
                self._final = self._encoder.settle(completion)
            else:
                builder = _builder(request, ctx)
                builder.open()
                for event in replay(completion):
                    builder.feed(event)
                self._final = builder.response
        return self._final


def _builder(request: ResponsesRequest, ctx: RequestContext) -> ResponseBuilder:
    return ResponseBuilder(response_shell(request, response_id(ctx.request_id), ctx.created))


class ResponsesStreamEncoder(StreamEncoder):
    """Canonical events -> ``event: <type>`` / ``data: {...}`` frames of the Responses stream."""

    def __init__(self, builder: ResponseBuilder) -> None:
        self._builder = builder
        # The settled (not yet sent) closing events, when the response was finished before its finish event.
        self._settled: list[NamedEvent] | None = None

    def settle(self, completion: Completion) -> Response:
        """Finish the response object now (to store it); its closing events wait for the finish event."""
        if self._settled is None:
            finish = pb.Finish(reason=completion.finish_reason, stop_sequence=completion.stop_sequence)
            self._settled = self._builder.settle(finish)
        return self._builder.response

    def encode(self, event: pb.GenerateEvent) -> bytes:
        if event.HasField("started"):
            out = [*self._builder.open(), *self._builder.feed(event)]
        elif event.HasField("finish") and self._settled is not None:
            finish = event.finish
            if finish.reason == pb.Finish.REASON_ERROR:
                ending = self._builder.fail(from_error_code(finish.error_code, finish.error_message))
            else:
                ending = self._builder.terminal()
            out = [*self._settled, *ending]
        else:
            out = self._builder.feed(event)
        return sse.event_frames(out)


def replay(completion: Completion) -> list[pb.GenerateEvent]:
    """The canonical events a folded completion stands for: its segments in order, one item each."""
    out = [events.started(completion.usage.prompt_tokens, completion.replica_id, completion.max_tokens)]
    for segment in completion.segments:
        if segment.kind == "reasoning":
            out.append(events.reasoning(segment.text))
        elif segment.kind == "text":
            out.append(events.text(segment.text))
        else:
            out.append(events.tool_call_start(segment.call_index, segment.call_id, segment.name))
            if segment.text:
                out.append(events.tool_call_delta(segment.call_index, segment.text))
            out.append(events.tool_call_end(segment.call_index))
    usage = completion.usage
    out.append(events.usage(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens))
    out.append(events.finish(completion.finish_reason, completion.stop_sequence))
    return out
