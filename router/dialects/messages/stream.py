"""Canonical events → Anthropic Messages stream events (pure, one builder per streamed response).

Events are ``(name, payload)`` pairs of plain dicts (the hot path: no SDK
objects per token; the tests accumulate them with the SDK). The sequence is
Anthropic's: ``message_start`` (with the prompt's input tokens, from the
``started`` event), then for each content block, in index order and
never interleaved, ``content_block_start`` → ``content_block_delta``… →
``content_block_stop`` (a server-side tool call: its ``server_tool_use`` and result blocks, each
started whole and stopped); then ``message_delta`` (non-null ``stop_reason``, the
final usage) and ``message_stop``. A thinking block ends with one
``signature_delta`` before its stop. A failure after ``message_start`` (the
canonical ``finish`` with an error, or an aborted generation) becomes one
``error`` event and the stream ends there, as Anthropic's does.

Blocks are the output segments of ``router.canonical.segments`` (tool calls
made contiguous, consecutive deltas of one kind in one block), the same
segments the non-streaming message is built from, so the stream accumulated by
a client equals the non-streaming message. The builder is fed the steps the
pipeline's ``CompletionFolder`` made for each event: a token is segmented once.
"""

from __future__ import annotations

from typing import Any

from fleetgate.router.canonical import sse
from fleetgate.router.canonical.fold import UsageCounts
from fleetgate.router.canonical.segments import Segment, SegmentDelta, SegmentOpened, SegmentStep, Step
from fleetgate.router.canonical.sse import NamedEvent, named
from fleetgate.router.dialects.base import StreamEncoder
from fleetgate.router.dialects.messages.response import message_object, tool_use_id
from fleetgate.router.dialects.messages.server_tool_blocks import server_tool_blocks
from fleetgate.router.dialects.messages.shape import anthropic_error_body
from fleetgate.router.dialects.messages.signature import thinking_signature
from fleetgate.router.dialects.messages.usage import final_usage, start_usage, stop_reason, stop_sequence
from fleetgate.router.errors import ApiError, ErrorKind, from_error_code
from fleetgate.v1 import replica_pb2 as pb

PING: NamedEvent = named({"type": "ping"})

ABORTED = ApiError(500, ErrorKind.API_ERROR, "The generation was aborted before it finished")


def error_event(err: ApiError) -> NamedEvent:
    return named(anthropic_error_body(err))


def message_shell(message_id: str, model: str, prompt_tokens: int) -> dict[str, Any]:
    """The message as ``message_start`` carries it: no content yet, a null stop reason."""
    return message_object(message_id, model, [], None, None, start_usage(prompt_tokens))


def _block_start(segment: Segment) -> dict[str, Any]:
    """The empty ``content_block`` of ``content_block_start``."""
    if segment.kind == "reasoning":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if segment.kind == "text":
        return {"type": "text", "text": ""}
    return {"type": "tool_use", "id": tool_use_id(segment.call_id), "name": segment.name, "input": {}}


def _block_delta(segment: Segment, text: str) -> dict[str, Any]:
    if segment.kind == "reasoning":
        return {"type": "thinking_delta", "thinking": text}
    if segment.kind == "text":
        return {"type": "text_delta", "text": text}
    return {"type": "input_json_delta", "partial_json": text}


class MessageStreamBuilder:
    """Feed the segment steps of each canonical event in order (``started`` first, ``finish`` last), as a
    ``CompletionFolder`` makes them; get the Anthropic events for each."""

    def __init__(self, message_id: str, model: str) -> None:
        self._message_id = message_id
        self._model = model
        self._usage = UsageCounts()
        # The block being streamed, and whether any block was a tool call.
        self._open: Segment | None = None
        self._made_tool_calls = False
        # Blocks before the open one beyond one per segment (a server-side tool call shows as two).
        self._extra_blocks = 0

    def feed(self, steps: list[Step]) -> list[NamedEvent]:
        out: list[NamedEvent] = []
        for step in steps:
            out.extend(self._event(step) if isinstance(step, pb.GenerateEvent) else self._block(step))
        return out

    def _event(self, event: pb.GenerateEvent) -> list[NamedEvent]:
        kind = event.WhichOneof("event")
        if kind == "started":
            shell = message_shell(self._message_id, self._model, event.started.prompt_tokens)
            return [named({"type": "message_start", "message": shell})]
        if kind == "usage":
            self._usage = UsageCounts.from_pb(event.usage)
        elif kind == "finish":
            return self._finish(event.finish)
        return []

    def _block(self, step: SegmentStep) -> list[NamedEvent]:
        """``content_block_start`` / ``_delta`` / ``_stop`` (a thinking block ends with its signature)."""
        segment = step.segment
        index = segment.position + self._extra_blocks
        if segment.server_tool is not None:
            return self._server_tool(segment.server_tool, index) if isinstance(step, SegmentOpened) else []
        if isinstance(step, SegmentDelta):
            return [named({"type": "content_block_delta", "index": index,
                           "delta": _block_delta(segment, step.text)})]
        if isinstance(step, SegmentOpened):
            self._open = segment
            self._made_tool_calls = self._made_tool_calls or segment.kind == "tool_call"
            return [named({"type": "content_block_start", "index": index,
                           "content_block": _block_start(segment)})]
        return self._block_stop(segment)

    def _server_tool(self, call: pb.ServerToolCall, index: int) -> list[NamedEvent]:
        """A server-side tool call that ran: its two blocks, each whole (``server_tool_blocks``)."""
        self._extra_blocks += 1
        out: list[NamedEvent] = []
        for offset, block in enumerate(server_tool_blocks(call)):
            out.append(named({"type": "content_block_start", "index": index + offset, "content_block": block}))
            out.append(named({"type": "content_block_stop", "index": index + offset}))
        return out

    def _block_stop(self, segment: Segment) -> list[NamedEvent]:
        self._open = None
        index = segment.position + self._extra_blocks
        out: list[NamedEvent] = []
        if segment.kind == "reasoning":
            delta = {"type": "signature_delta", "signature": thinking_signature(segment.text)}
            out.append(named({"type": "content_block_delta", "index": index, "delta": delta}))
        out.append(named({"type": "content_block_stop", "index": index}))
        return out

    # ------------------------------------------------------------ the end

    def _finish(self, finish: pb.Finish) -> list[NamedEvent]:
        if finish.reason == pb.Finish.REASON_ERROR:
            return [error_event(from_error_code(finish.error_code, finish.error_message))]
        if finish.reason == pb.Finish.REASON_ABORT:
            return [error_event(ABORTED)]
        out = self._block_stop(self._open) if self._open is not None else []
        delta = {"stop_reason": stop_reason(finish.reason, self._made_tool_calls),
                 "stop_sequence": stop_sequence(finish.reason, finish.stop_sequence)}
        out.append(named({"type": "message_delta", "delta": delta, "usage": final_usage(self._usage)}))
        out.append(named({"type": "message_stop"}))
        return out


class MessagesStreamEncoder(StreamEncoder):
    """SSE frames (``event: <type>``) of one streamed message, with ``ping`` while the model is quiet."""

    wants_keepalive = True

    def __init__(self, message_id: str, model: str) -> None:
        self._builder = MessageStreamBuilder(message_id, model)

    def encode(self, event: pb.GenerateEvent, steps: list[Step]) -> bytes:
        return sse.event_frames(self._builder.feed(steps))

    def keepalive(self) -> bytes:
        return sse.event_frame(*PING)
