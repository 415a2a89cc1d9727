"""Canonical content events -> ordered output segments (pure): the one place that decides output blocks.

A segment is one output block as Anthropic content blocks and Responses output
items see it: a run of consecutive reasoning deltas, a run of consecutive text
deltas, one tool call (start, argument deltas, end), or one server-side tool call
the router's tool loop ran (a ``server_tool`` event: opened and closed at once). Events pass through
``ContiguousEvents`` first, so a tool call is never interrupted by other output.

``SegmentStream.feed(event)`` returns steps in order: ``SegmentOpened``,
``SegmentDelta`` and ``SegmentClosed`` for content, and every other event
(``started``, ``usage``, ``finish``) unchanged. A segment closes when the next
one opens or its tool call ends; the one still open at the end is closed by
``close()``, when the consumer decides (a stream that fails may leave it open).

The fold (non-streaming responses), the Messages stream and the Responses stream
all segment with this class, so a stream's blocks and the folded object's blocks
are the same list, in the same order, with the same positions.

Rules: an empty text or reasoning delta opens nothing; argument deltas and ends
belong to the tool call that is open, and are dropped when it is another one
(or none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fleetgate.router.canonical.contiguous import ContiguousEvents
from fleetgate.v1 import replica_pb2 as pb

SegmentKind = Literal["reasoning", "text", "tool_call", "server_tool"]


@dataclass
class ToolCallOut:
    """A finished tool call."""

    index: int
    id: str
    name: str
    arguments: str = ""


@dataclass
class Segment:
    """One output block, growing while it is open."""

    kind: SegmentKind
    # Place in the output (0, 1, ...): the Anthropic block index, the Responses output_index.
    position: int
    chunks: list[str] = field(default_factory=list)
    # tool_call only: the canonical call's index, id and name.
    call_index: int = -1
    call_id: str = ""
    name: str = ""
    # server_tool only: the call as the tool loop ran it (router.server_tools).
    server_tool: pb.ServerToolCall | None = None

    @property
    def text(self) -> str:
        """The reasoning or text, or the tool call's arguments."""
        return "".join(self.chunks)

    def tool_call(self) -> ToolCallOut:
        return ToolCallOut(self.call_index, self.call_id, self.name, self.text)


@dataclass(frozen=True)
class SegmentOpened:
    segment: Segment


@dataclass(frozen=True)
class SegmentDelta:
    segment: Segment
    text: str


@dataclass(frozen=True)
class SegmentClosed:
    segment: Segment


SegmentStep = SegmentOpened | SegmentDelta | SegmentClosed
Step = SegmentStep | pb.GenerateEvent


class SegmentStream:
    """Feed canonical events in arrival order; get segment steps (and the other events) in output order."""

    def __init__(self) -> None:
        self._order = ContiguousEvents()
        self._open: Segment | None = None
        # Every segment opened so far, in output order.
        self.segments: list[Segment] = []

    def feed(self, event: pb.GenerateEvent) -> list[Step]:
        ordered = self._order.feed(event)
        if len(ordered) == 1:  # the usual case: nothing held back or released
            return self._apply(ordered[0])
        return [step for each in ordered for step in self._apply(each)]

    def close(self) -> list[Step]:
        """Close the open segment, if any."""
        segment, self._open = self._open, None
        return [SegmentClosed(segment)] if segment is not None else []

    def _apply(self, event: pb.GenerateEvent) -> list[Step]:
        kind = event.WhichOneof("event")
        if kind == "text":
            return self._delta("text", event.text.text)
        if kind == "reasoning":
            return self._delta("reasoning", event.reasoning.text)
        if kind == "tool_call_start":
            start = event.tool_call_start
            closed = self.close()
            return [*closed, self._open_segment("tool_call", call_index=start.index, call_id=start.id, name=start.name)]
        if kind == "tool_call_delta":
            call = self._open_call(event.tool_call_delta.index)
            if call is None:
                return []
            call.chunks.append(event.tool_call_delta.delta)
            return [SegmentDelta(call, event.tool_call_delta.delta)]
        if kind == "tool_call_end":
            return self.close() if self._open_call(event.tool_call_end.index) is not None else []
        if kind == "server_tool":
            closed = self.close()
            opened = self._open_segment("server_tool", call_id=event.server_tool.id, name=event.server_tool.name)
            opened.segment.server_tool = event.server_tool
            return [*closed, opened, *self.close()]
        return [event]

    def _delta(self, kind: Literal["reasoning", "text"], text: str) -> list[Step]:
        if not text:
            return []
        out: list[Step] = []
        if self._open is None or self._open.kind != kind:
            out.extend(self.close())
            out.append(self._open_segment(kind))
        assert self._open is not None
        self._open.chunks.append(text)
        out.append(SegmentDelta(self._open, text))
        return out

    def _open_segment(
        self, kind: SegmentKind, call_index: int = -1, call_id: str = "", name: str = ""
    ) -> SegmentOpened:
        self._open = Segment(kind, len(self.segments), call_index=call_index, call_id=call_id, name=name)
        self.segments.append(self._open)
        return SegmentOpened(self._open)

    def _open_call(self, index: int) -> Segment | None:
        """The open segment when it is the tool call with this index."""
        segment = self._open
        return segment if segment is not None and segment.kind == "tool_call" and segment.call_index == index else None
