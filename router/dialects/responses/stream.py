"""Canonical events -> Responses stream events and the response they add up to (pure).

One ``ResponseBuilder`` per request. ``open()`` gives ``response.created`` and
``response.in_progress``; the segment steps of each canonical event (as the
pipeline's ``CompletionFolder`` made them: a token is segmented once) give the
stream events to send for it; the ``finish`` event's steps (``finish``, or
``settle`` then ``terminal``, or ``fail``) give the closing events and the
terminal ``response.completed`` / ``response.incomplete`` / ``response.failed``.
Every event carries a ``sequence_number`` one higher than the last.

Per output item, in order and never interleaved:

- reasoning: ``output_item.added`` -> ``content_part.added`` (reasoning_text) ->
  ``reasoning_text.delta``... -> ``reasoning_text.done`` -> ``content_part.done`` ->
  ``output_item.done``;
- message: ``output_item.added`` -> ``content_part.added`` (output_text) ->
  ``output_text.delta``... -> ``output_text.done`` -> ``content_part.done`` ->
  ``output_item.done``;
- function call: ``output_item.added`` -> ``function_call_arguments.delta``... ->
  ``function_call_arguments.done`` -> ``output_item.done``;
- a server-side tool call (``mcp_list_tools``, ``mcp_call``, ``mcp_approval_request``, ``web_search_call``,
  ``code_interpreter_call``): its events of ``server_tool_items``, all at once after it ran.

Each event is a member of the Open Responses streaming-event union, and the
response it may carry a whole ``ResponseResource`` (``response.py``), except
``error``: it has OpenAI's top-level ``code`` / ``message`` / ``param``, as
OpenAI sends it, not the spec's nested ``error`` payload, because OpenAI's SDKs
raise on any stream event with an ``error`` key (the client would never see the
``response.failed`` that follows).

Items are the output segments of ``router.canonical.segments`` (tool calls made
contiguous, consecutive deltas of one kind in one item), the same segments a
folded completion keeps. A non-streaming request replays the folded segments
through the same builder (``replay``) and returns ``builder.response``, so a streamed
response and a non-streamed one are the same object. Items and the response
are the ``openai`` SDK's types; ids are generated once, so they are equal in
the stream, the final object and the store.

``ResponsesStreamEncoder`` is the dialect's stream encoder: one builder's
events as ``event: <type>`` frames, the response settled before the finish
hooks run (the store keeps it) and its closing events sent with the finish.

Events are given as ``(name, payload)`` (``router.canonical.sse.NamedEvent``),
serialized when they are made: the few events per item are built with the SDK's
event types, the per-token deltas as plain dicts in the same shape and field
order (the hot path; the tests validate them with the SDK's types).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningTextDoneEvent,
    ResponseTextDoneEvent,
)
from openai.types.responses.response_error import ResponseError
from openai.types.responses.response_reasoning_item import Content as ReasoningContent

from fleetgate.core import events
from fleetgate.core.tool_call_ids import new_tool_call_id
from fleetgate.router.canonical import sse
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.ids import new_item_id
from fleetgate.router.canonical.segments import Segment, SegmentClosed, SegmentDelta, SegmentOpened, Step
from fleetgate.router.canonical.sse import NamedEvent, named
from fleetgate.router.dialects.base import StreamEncoder
from fleetgate.router.dialects.responses.namespaces import split_name
from fleetgate.router.dialects.responses.response import settle_status, to_json, usage_of
from fleetgate.router.dialects.responses.server_tool_items import server_tool_events, server_tool_item
from fleetgate.router.errors import ApiError, ErrorKind, from_error_code
from fleetgate.v1 import replica_pb2 as pb

ItemKind = Literal["reasoning", "message", "function_call"]
ItemStatus = Literal["completed", "incomplete"]

# Response.error codes the SDK accepts, by the kind of the canonical error.
_ERROR_CODES = {ErrorKind.INVALID_REQUEST: "invalid_prompt", ErrorKind.RATE_LIMIT: "rate_limit_exceeded"}


_ITEM_KINDS: dict[str, ItemKind] = {"reasoning": "reasoning", "text": "message", "tool_call": "function_call"}
_ITEM_ID_PREFIXES: dict[ItemKind, str] = {"reasoning": "rs_", "message": "msg_", "function_call": "fc_"}


@dataclass
class _OpenItem:
    """The output item of the open segment."""

    segment: Segment
    item_id: str
    call_id: str = ""

    @property
    def kind(self) -> ItemKind:
        return _ITEM_KINDS[self.segment.kind]

    @property
    def output_index(self) -> int:
        return self.segment.position

    @property
    def name(self) -> str:
        return self.segment.name

    @property
    def text(self) -> str:
        return self.segment.text


class ResponseBuilder:
    """Feed canonical events in order; get the Responses events to send for each."""

    def __init__(self, shell: Response, namespaces: frozenset[str] = frozenset(),
                 seal_reasoning: Callable[[str], str] | None = None) -> None:
        self._response = shell
        # The request's namespace tools: a call of ``NS.fn`` is the item {namespace: NS, name: fn}.
        self._namespaces = namespaces
        # With include=["reasoning.encrypted_content"]: finished reasoning items carry their text sealed.
        self._seal_reasoning = seal_reasoning
        self._open: _OpenItem | None = None
        self._sequence = 0
        self._usage = pb.Usage()
        self._failure: ApiError | None = None
        self.replica_id = ""
        # settled: the response object is final; done: the terminal event was given too.
        self.settled = False
        self.done = False

    @property
    def response(self) -> Response:
        """The response object so far (final once ``settled``)."""
        return self._response

    # ------------------------------------------------------------ lifecycle

    def open(self) -> list[NamedEvent]:
        """``response.created`` then ``response.in_progress``."""
        return [
            self._emit(ResponseCreatedEvent, type="response.created", response=self._response),
            self._emit(ResponseInProgressEvent, type="response.in_progress", response=self._response),
        ]

    def feed(self, steps: list[Step]) -> list[NamedEvent]:
        """The events for the steps of one canonical event other than ``finish``."""
        return self._steps(steps)

    def finish(self, steps: list[Step]) -> list[NamedEvent]:
        """The events for the ``finish`` event's steps: the response settles and the stream ends."""
        return [*self.settle(steps), *self.terminal()]

    def settle(self, steps: list[Step]) -> list[NamedEvent]:
        """Everything before the terminal event, from the ``finish`` event's steps (held output released,
        then the finish itself): the open item's done events, the final status and usage. After it,
        ``response`` is final; ``terminal()`` (or ``fail``) ends the stream."""
        out = self._steps(steps)
        finish = steps[-1]
        assert isinstance(finish, pb.GenerateEvent) and finish.HasField("finish"), "settle takes a finish event's steps"
        reason = finish.finish.reason
        if reason == pb.Finish.REASON_ERROR:
            error = from_error_code(finish.finish.error_code, finish.finish.error_message)
            return [*out, *self._settle_failed(error)]
        if reason == pb.Finish.REASON_ABORT:
            return [*out, *self._settle_failed(ApiError(500, ErrorKind.API_ERROR, "The generation was aborted"))]
        status: ItemStatus = "incomplete" if reason == pb.Finish.REASON_LENGTH else "completed"
        out.extend(self._close_item(status))
        settle_status(self._response, status)
        self._response.usage = usage_of(self._usage)
        self.settled = True
        return out

    def terminal(self) -> list[NamedEvent]:
        """The last events: ``response.completed`` / ``response.incomplete``, or ``error`` + ``response.failed``."""
        self.done = True
        response = self._response
        if self._failure is not None:
            code = _error_code(self._failure)
            return [
                self._emit(ResponseErrorEvent, type="error", code=code, message=self._failure.message,
                           param=self._failure.param),
                self._emit(ResponseFailedEvent, type="response.failed", response=response),
            ]
        if self._response.status == "incomplete":
            return [self._emit(ResponseIncompleteEvent, type="response.incomplete", response=response)]
        return [self._emit(ResponseCompletedEvent, type="response.completed", response=response)]

    @property
    def failed(self) -> bool:
        """The response settled as failed."""
        return self._failure is not None

    def fail(self, error: ApiError) -> list[NamedEvent]:
        """A failure after the stream began (also after ``settle``): ``error``, then ``response.failed``."""
        return [*self._settle_failed(error), *self.terminal()]

    def _settle_failed(self, error: ApiError) -> list[NamedEvent]:
        out = self._close_item("incomplete")
        self._failure = error
        self._response.status = "failed"
        self._response.error = ResponseError(code=_error_code(error), message=error.message)
        self._response.usage = usage_of(self._usage)
        self.settled = True
        return out

    # ------------------------------------------------------------ canonical events

    def _steps(self, steps: list[Step]) -> list[NamedEvent]:
        out: list[NamedEvent] = []
        for step in steps:
            if isinstance(step, SegmentDelta):
                out.append(self._delta(step.text))
            elif isinstance(step, pb.GenerateEvent):
                self._event(step)
            elif step.segment.kind == "server_tool":
                if isinstance(step, SegmentOpened):
                    out.extend(self._server_tool_item(step.segment))
            elif isinstance(step, SegmentOpened):
                out.extend(self._open_item(step.segment))
            else:
                out.extend(self._close_item("completed"))
        return out

    def _server_tool_item(self, segment: Segment) -> list[NamedEvent]:
        """A server-side tool call, whole (``server_tool_items``): it ran before it was shown."""
        call = segment.server_tool
        assert call is not None
        index = segment.position
        out = [self._emit(ResponseOutputItemAddedEvent, type="response.output_item.added", output_index=index,
                          item=server_tool_item(call, in_progress=True))]
        server_tool_events(call, index, lambda **fields: out.append(self._plain(fields)))
        final = server_tool_item(call)
        self._response.output.append(final)
        out.append(self._emit(ResponseOutputItemDoneEvent, type="response.output_item.done", output_index=index,
                              item=final))
        return out

    def _event(self, event: pb.GenerateEvent) -> None:
        if event.HasField("started"):
            self.replica_id = event.started.replica_id
        elif event.HasField("usage"):
            self._usage.CopyFrom(event.usage)

    # ------------------------------------------------------------ items

    def _open_item(self, segment: Segment) -> list[NamedEvent]:
        kind = _ITEM_KINDS[segment.kind]
        item = self._open = _OpenItem(segment, new_item_id(_ITEM_ID_PREFIXES[kind]))
        if kind == "function_call":
            item.call_id = segment.call_id or new_tool_call_id()
            return [self._emit(ResponseOutputItemAddedEvent, type="response.output_item.added",
                               output_index=item.output_index, item=self._item(item, "in_progress"))]
        added = self._emit(
            ResponseOutputItemAddedEvent,
            type="response.output_item.added",
            output_index=item.output_index,
            item=self._item(item, "in_progress", with_content=False),
        )
        part = {"type": "reasoning_text", "text": ""} if kind == "reasoning" else _output_text("")
        part_added = self._emit(
            ResponseContentPartAddedEvent,
            type="response.content_part.added",
            item_id=item.item_id,
            output_index=item.output_index,
            content_index=0,
            part=part,
        )
        return [added, part_added]

    def _delta(self, text: str) -> NamedEvent:
        """A delta of the open item, in the field order of the SDK's delta event types."""
        item = self._open
        assert item is not None
        if item.kind == "message":
            payload = {"content_index": 0, "delta": text, "item_id": item.item_id, "logprobs": [],
                       "output_index": item.output_index, "sequence_number": self._next_sequence(),
                       "type": "response.output_text.delta"}
        elif item.kind == "reasoning":
            payload = {"content_index": 0, "delta": text, "item_id": item.item_id, "output_index": item.output_index,
                       "sequence_number": self._next_sequence(), "type": "response.reasoning_text.delta"}
        else:
            payload = {"delta": text, "item_id": item.item_id, "output_index": item.output_index,
                       "sequence_number": self._next_sequence(), "type": "response.function_call_arguments.delta"}
        return named(payload)

    def _close_item(self, status: ItemStatus) -> list[NamedEvent]:
        """The done events of the open item, which joins the response's output."""
        item, self._open = self._open, None
        if item is None:
            return []
        where = {"item_id": item.item_id, "output_index": item.output_index}
        out: list[NamedEvent] = []
        if item.kind == "reasoning":
            part: Any = {"type": "reasoning_text", "text": item.text}
            out.append(self._emit(ResponseReasoningTextDoneEvent, type="response.reasoning_text.done",
                                  content_index=0, text=item.text, **where))
            out.append(self._emit(ResponseContentPartDoneEvent, type="response.content_part.done",
                                  content_index=0, part=part, **where))
        elif item.kind == "message":
            out.append(self._emit(ResponseTextDoneEvent, type="response.output_text.done",
                                  content_index=0, text=item.text, logprobs=[], **where))
            out.append(self._emit(ResponseContentPartDoneEvent, type="response.content_part.done",
                                  content_index=0, part=_output_text(item.text), **where))
        else:
            out.append(self._emit(ResponseFunctionCallArgumentsDoneEvent, type="response.function_call_arguments.done",
                                  arguments=item.text, **where))
        final = self._item(item, status)
        self._response.output.append(final)
        out.append(self._emit(ResponseOutputItemDoneEvent, type="response.output_item.done",
                              output_index=item.output_index, item=final))
        return out

    def _item(self, item: _OpenItem, status: Literal["in_progress", "completed", "incomplete"],
              with_content: bool = True) -> Any:
        """The SDK output item for ``item`` (empty content while it is being added)."""
        if item.kind == "reasoning":
            content = [ReasoningContent(type="reasoning_text", text=item.text)] if with_content else []
            reasoning = ResponseReasoningItem(type="reasoning", id=item.item_id, summary=[], content=content,
                                              status=status)
            if self._seal_reasoning is not None and with_content and status != "in_progress":
                reasoning.encrypted_content = self._seal_reasoning(item.text)
            return reasoning
        if item.kind == "message":
            return ResponseOutputMessage(
                type="message", id=item.item_id, role="assistant", status=status,
                content=[_output_text(item.text)] if with_content else [],
            )
        namespace, name = split_name(item.name, self._namespaces)
        call = ResponseFunctionToolCall(
            type="function_call", id=item.item_id, call_id=item.call_id, name=name, arguments=item.text, status=status,
        )
        if namespace is not None:
            call.namespace = namespace
        return call

    # ------------------------------------------------------------ plumbing

    def _next_sequence(self) -> int:
        sequence = self._sequence
        self._sequence += 1
        return sequence

    def _plain(self, fields: dict[str, Any]) -> NamedEvent:
        """An event without a response object in it, as a plain dict numbered in turn."""
        return named({**fields, "sequence_number": self._next_sequence()})

    def _emit(self, event_type: Any, **fields: Any) -> NamedEvent:
        """The SDK event ``event_type`` with the next sequence number, serialized now (the response it
        may carry changes later)."""
        return named(to_json(event_type(sequence_number=self._next_sequence(), **fields)))


class ResponsesStreamEncoder(StreamEncoder):
    """Canonical events -> ``event: <type>`` / ``data: {...}`` frames of the Responses stream."""

    def __init__(self, builder: ResponseBuilder) -> None:
        self._builder = builder
        # The closing events made when the response settled, sent with the finish event's frames.
        self._settled: list[NamedEvent] | None = None

    @property
    def response(self) -> Response:
        """The response object, final once settled."""
        return self._builder.response

    def settle(self, steps: list[Step]) -> None:
        """Finish the response object before the finish hooks run (the store keeps it); its closing events
        are sent with the finish event's frames."""
        if self._settled is None:
            self._settled = self._builder.settle(steps)

    def encode(self, event: pb.GenerateEvent, steps: list[Step]) -> bytes:
        kind = event.WhichOneof("event")
        if kind == "finish":
            self.settle(steps)
            finish = event.finish
            if finish.reason == pb.Finish.REASON_ERROR and not self._builder.failed:
                # The response settled, then a finish hook failed.
                ending = self._builder.fail(from_error_code(finish.error_code, finish.error_message))
            else:
                ending = self._builder.terminal()
            out = [*(self._settled or []), *ending]
        elif kind == "started":
            out = [*self._builder.open(), *self._builder.feed(steps)]
        else:
            out = self._builder.feed(steps)
        return sse.event_frames(out)


def replay(builder: ResponseBuilder, completion: Completion) -> Response:
    """The finished response of a folded completion: its segments fed through ``builder`` as its stream fed
    them, one item each (a tool call ends with its call; text and reasoning when the next item opens, the
    last one with the response)."""
    builder.open()
    last = len(completion.segments) - 1
    for position, segment in enumerate(completion.segments):
        steps: list[Step] = [SegmentOpened(segment)]
        if segment.text:
            steps.append(SegmentDelta(segment, segment.text))
        if segment.kind == "tool_call" or position < last:
            steps.append(SegmentClosed(segment))
        builder.feed(steps)
    builder.feed([pb.GenerateEvent(usage=completion.usage.to_pb())])
    builder.settle([events.finish(completion.finish_reason, completion.stop_sequence)])
    return builder.response


def _error_code(error: ApiError) -> Any:
    return _ERROR_CODES.get(error.kind, "server_error")


def _output_text(text: str) -> ResponseOutputText:
    return ResponseOutputText(type="output_text", text=text, annotations=[])
