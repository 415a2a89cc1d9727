"""Reorder canonical content events so that each tool call is contiguous (pure).

Canonical events may interleave tool calls with other output (text between the
fragments of one call, or the deltas of two calls at once). Output made of
blocks or items that never interleave (Responses output items, Anthropic
content blocks, the folded completion's segments) is cut into segments by
``router.canonical.segments``, which feeds events through ``ContiguousEvents``: while
a tool call is open, every event that does not belong to it is held back and
replayed, in order, once the call ends. At ``finish`` everything still held is
released before the ``finish`` itself. Nothing is dropped or duplicated.
"""

from __future__ import annotations

from fleetgate.v1 import replica_pb2 as pb


class ContiguousEvents:
    """Feed events in arrival order; get them back in an order where tool calls never interleave."""

    def __init__(self) -> None:
        self._open_call: int | None = None
        self._held: list[pb.GenerateEvent] = []

    def feed(self, event: pb.GenerateEvent) -> list[pb.GenerateEvent]:
        kind = event.WhichOneof("event")
        if kind == "finish":
            return [*self._release_all(), event]
        if self._open_call is None:
            if kind == "tool_call_start":
                self._open_call = event.tool_call_start.index
            return [event]
        if kind == "tool_call_delta" and event.tool_call_delta.index == self._open_call:
            return [event]
        if kind == "tool_call_end" and event.tool_call_end.index == self._open_call:
            self._open_call = None
            return [event, *self._replay()]
        self._held.append(event)
        return []

    def _replay(self) -> list[pb.GenerateEvent]:
        held, self._held = self._held, []
        out: list[pb.GenerateEvent] = []
        for event in held:
            out.extend(self.feed(event))
        return out

    def _release_all(self) -> list[pb.GenerateEvent]:
        """At the finish: give up on a call that never ended and play out everything held."""
        out: list[pb.GenerateEvent] = []
        while self._held:
            self._open_call = None
            out.extend(self._replay())
        self._open_call = None
        return out
