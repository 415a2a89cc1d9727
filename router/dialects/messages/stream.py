"""Canonical events → Anthropic Messages stream events (pure, one builder per streamed response).

The sequence is Anthropic's: ``message_start`` (with the prompt's input tokens,
from the ``started`` event), then for each content block, in index order and
never interleaved, ``content_block_start`` → ``content_block_delta``… →
``content_block_stop``; then ``message_delta`` (non-null ``stop_reason``, the
final usage) and ``message_stop``. A thinking block ends with one
``signature_delta`` before its stop. A failure after ``message_start`` (the
canonical ``finish`` with an error, or an aborted generation) becomes one
``error`` event and the stream ends there, as Anthropic's does.

Tool calls are made contiguous first (``router.canonical.contiguous``), so a
block is never interrupted by another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fleetgate.v1 import replica_pb2 as pb
from router.canonical.contiguous import ContiguousEvents
from router.canonical.fold import UsageCounts
from router.dialects.messages.response import message_object, tool_use_id
from router.dialects.messages.signature import thinking_signature
from router.dialects.messages.usage import final_usage, start_usage, stop_reason, stop_sequence
from router.errors import ApiError, ErrorKind, anthropic_error_body, from_error_code

StreamEvent = tuple[str, dict[str, Any]]
"""(SSE event name, JSON payload); the name always equals ``payload["type"]``."""

BlockKind = Literal["text", "thinking", "tool_use"]

PING: StreamEvent = ("ping", {"type": "ping"})

ABORTED = ApiError(500, ErrorKind.API_ERROR, "The generation was aborted before it finished")


def _event(payload: dict[str, Any]) -> StreamEvent:
    return payload["type"], payload


def error_event(err: ApiError) -> StreamEvent:
    return _event(anthropic_error_body(err))


def message_shell(message_id: str, model: str, prompt_tokens: int) -> dict[str, Any]:
    """The message as ``message_start`` carries it: no content yet, a null stop reason."""
    return message_object(message_id, model, [], None, None, start_usage(prompt_tokens))


@dataclass
class _OpenBlock:
    index: int
    kind: BlockKind
    thinking: list[str] = field(default_factory=list)


class MessageStreamBuilder:
    """Feed canonical events in order (``started`` first, ``finish`` last); get the Anthropic events for each."""

    def __init__(self, message_id: str, model: str) -> None:
        self._message_id = message_id
        self._model = model
        self._order = ContiguousEvents()
        self._next_index = 0
        self._open: _OpenBlock | None = None
        self._usage = UsageCounts()
        self._saw_tool_use = False

    def feed(self, event: pb.GenerateEvent) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for ordered in self._order.feed(event):
            out.extend(self._apply(ordered))
        return out

    def _apply(self, event: pb.GenerateEvent) -> list[StreamEvent]:
        kind = event.WhichOneof("event")
        if kind == "started":
            shell = message_shell(self._message_id, self._model, event.started.prompt_tokens)
            return [_event({"type": "message_start", "message": shell})]
        if kind == "text":
            return self._delta("text", {"type": "text_delta", "text": event.text.text})
        if kind == "reasoning":
            return self._delta("thinking", {"type": "thinking_delta", "thinking": event.reasoning.text})
        if kind == "tool_call_start":
            return self._open_tool(event.tool_call_start)
        if kind == "tool_call_delta":
            if self._open is None or self._open.kind != "tool_use":
                return []  # arguments of a call that never started: nothing to attach them to
            delta = {"type": "input_json_delta", "partial_json": event.tool_call_delta.delta}
            return [_event({"type": "content_block_delta", "index": self._open.index, "delta": delta})]
        if kind == "tool_call_end":
            return self._close() if self._open is not None and self._open.kind == "tool_use" else []
        if kind == "usage":
            self._usage = UsageCounts.from_pb(event.usage)
            return []
        if kind == "finish":
            return self._finish(event.finish)
        return []

    # ------------------------------------------------------------ blocks

    def _delta(self, kind: BlockKind, delta: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._open is None or self._open.kind != kind:
            out.extend(self._close())
            empty = {"type": "text", "text": ""} if kind == "text" else {"type": "thinking", "thinking": "", "signature": ""}
            out.append(self._start_block(kind, empty))
        assert self._open is not None
        if kind == "thinking":
            self._open.thinking.append(delta["thinking"])
        out.append(_event({"type": "content_block_delta", "index": self._open.index, "delta": delta}))
        return out

    def _open_tool(self, start: pb.ToolCallStart) -> list[StreamEvent]:
        self._saw_tool_use = True
        out = self._close()
        out.append(self._start_block("tool_use", {"type": "tool_use", "id": tool_use_id(start.id), "name": start.name, "input": {}}))
        return out

    def _start_block(self, kind: BlockKind, content_block: dict[str, Any]) -> StreamEvent:
        self._open = _OpenBlock(index=self._next_index, kind=kind)
        self._next_index += 1
        return _event({"type": "content_block_start", "index": self._open.index, "content_block": content_block})

    def _close(self) -> list[StreamEvent]:
        block, self._open = self._open, None
        if block is None:
            return []
        out: list[StreamEvent] = []
        if block.kind == "thinking":
            delta = {"type": "signature_delta", "signature": thinking_signature("".join(block.thinking))}
            out.append(_event({"type": "content_block_delta", "index": block.index, "delta": delta}))
        out.append(_event({"type": "content_block_stop", "index": block.index}))
        return out

    # ------------------------------------------------------------ the end

    def _finish(self, finish: pb.Finish) -> list[StreamEvent]:
        if finish.reason == pb.Finish.REASON_ERROR:
            return [error_event(from_error_code(finish.error_code, finish.error_message))]
        if finish.reason == pb.Finish.REASON_ABORT:
            return [error_event(ABORTED)]
        out = self._close()
        delta = {"stop_reason": stop_reason(finish.reason, self._saw_tool_use), "stop_sequence": stop_sequence(finish.reason, finish.stop_sequence)}
        out.append(_event({"type": "message_delta", "delta": delta, "usage": final_usage(self._usage)}))
        out.append(_event({"type": "message_stop"}))
        return out
