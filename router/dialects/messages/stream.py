"""Canonical events → Anthropic Messages stream events (pure, one translator per request).

The sequence is Anthropic's: ``message_start`` (with the prompt's input tokens,
from the ``started`` event), then for each content block, in index order and
never interleaved, ``content_block_start`` → ``content_block_delta``… →
``content_block_stop``; then ``message_delta`` (non-null ``stop_reason``, usage)
and ``message_stop``. Thinking blocks end with one ``signature_delta`` before
their stop. A failure after ``message_start`` becomes an ``error`` event.

Canonical events may interleave in ways Anthropic blocks may not (text between
the fragments of one tool call, or two tool calls at once): while a tool_use
block is open, events that belong elsewhere are held back and replayed when it
ends, so each block stays contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fleetgate.v1 import replica_pb2 as pb
from router.dialects.messages.signature import thinking_signature
from router.dialects.messages.usage import final_usage, start_usage, stop_reason, stop_sequence

StreamEvent = tuple[str, dict[str, Any]]
"""(SSE event name, JSON payload); the name always equals ``payload["type"]``."""

BlockKind = Literal["text", "thinking", "tool_use"]


def _event(payload: dict[str, Any]) -> StreamEvent:
    return payload["type"], payload


def error_event(error_type: str, message: str) -> StreamEvent:
    """An Anthropic ``error`` stream event (error types as in ``router.errors``)."""
    return _event({"type": "error", "error": {"type": error_type, "message": message}})


PING: StreamEvent = ("ping", {"type": "ping"})


@dataclass
class _OpenBlock:
    index: int
    kind: BlockKind
    tool_index: int = -1
    thinking: list[str] = field(default_factory=list)


class MessageStreamTranslator:
    """Feed canonical events in order; get the Anthropic events to send for each."""

    def __init__(self, message_id: str, model: str, tool_use_id: Any) -> None:
        """``tool_use_id`` maps a canonical tool-call id to the ``toolu_…`` id clients see."""
        self._message_id = message_id
        self._model = model
        self._tool_use_id = tool_use_id
        self._next_index = 0
        self._open: _OpenBlock | None = None
        self._held: list[pb.GenerateEvent] = []
        self._usage = pb.Usage()
        self._saw_tool_use = False
        self.started = False
        self.finished = False

    # ------------------------------------------------------------ public

    def feed(self, event: pb.GenerateEvent) -> list[StreamEvent]:
        kind = event.WhichOneof("event")
        if kind == "started":
            return self._start(event.started)
        if kind == "usage":
            self._usage.CopyFrom(event.usage)
            return []
        if kind == "finish":
            return self._finish(event.finish)
        if self._holds(event, kind):
            self._held.append(event)
            return []
        return self._content(event, kind)

    # ------------------------------------------------------------ message frame

    def _start(self, started: pb.Started) -> list[StreamEvent]:
        self.started = True
        message = {
            "id": self._message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage(started.prompt_tokens),
        }
        return [_event({"type": "message_start", "message": message})]

    def _finish(self, finish: pb.Finish) -> list[StreamEvent]:
        self.finished = True
        if finish.reason in (pb.Finish.REASON_ERROR, pb.Finish.REASON_ABORT):
            return []  # the caller renders the failure as an `error` event
        out = self._flush_all()
        delta = {"stop_reason": stop_reason(finish.reason, self._saw_tool_use), "stop_sequence": stop_sequence(finish)}
        out.append(_event({"type": "message_delta", "delta": delta, "usage": final_usage(self._usage)}))
        out.append(_event({"type": "message_stop"}))
        return out

    # ------------------------------------------------------------ content blocks

    def _holds(self, event: pb.GenerateEvent, kind: str | None) -> bool:
        """Whether ``event`` must wait because another tool_use block is open."""
        if self._open is None or self._open.kind != "tool_use":
            return False
        if kind == "tool_call_delta":
            return event.tool_call_delta.index != self._open.tool_index
        if kind == "tool_call_end":
            return event.tool_call_end.index != self._open.tool_index
        return True

    def _content(self, event: pb.GenerateEvent, kind: str | None) -> list[StreamEvent]:
        if kind == "text":
            return self._delta("text", {"type": "text_delta", "text": event.text.text})
        if kind == "reasoning":
            out = self._delta("thinking", {"type": "thinking_delta", "thinking": event.reasoning.text})
            assert self._open is not None
            self._open.thinking.append(event.reasoning.text)
            return out
        if kind == "tool_call_start":
            start = event.tool_call_start
            out = self._close()
            out.extend(self._open_tool(start))
            return out
        if kind == "tool_call_delta":
            if self._open is None or self._open.kind != "tool_use":  # no started call to attach it to
                return []
            delta = {"type": "input_json_delta", "partial_json": event.tool_call_delta.delta}
            return [_event({"type": "content_block_delta", "index": self._open.index, "delta": delta})]
        if kind == "tool_call_end":
            if self._open is None or self._open.kind != "tool_use":
                return []
            out = self._close()
            out.extend(self._replay_held())
            return out
        return []

    def _delta(self, block: BlockKind, delta: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._open is None or self._open.kind != block:
            out.extend(self._close())
            out.append(self._open_block(block, {"type": "text", "text": ""} if block == "text" else
                                        {"type": "thinking", "thinking": "", "signature": ""}))
        assert self._open is not None
        out.append(_event({"type": "content_block_delta", "index": self._open.index, "delta": delta}))
        return out

    def _open_tool(self, start: pb.ToolCallStart) -> list[StreamEvent]:
        self._saw_tool_use = True
        block = {"type": "tool_use", "id": self._tool_use_id(start.id), "name": start.name, "input": {}}
        event = self._open_block("tool_use", block)
        assert self._open is not None
        self._open.tool_index = start.index
        return [event]

    def _open_block(self, kind: BlockKind, content_block: dict[str, Any]) -> StreamEvent:
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

    def _replay_held(self) -> list[StreamEvent]:
        held, self._held = self._held, []
        out: list[StreamEvent] = []
        for event in held:
            out.extend(self.feed(event))
        return out

    def _flush_all(self) -> list[StreamEvent]:
        """At the finish: close the open block and play out anything still held."""
        out: list[StreamEvent] = []
        while self._open is not None or self._held:
            out.extend(self._close())
            out.extend(self._replay_held())
        return out
