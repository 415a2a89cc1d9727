"""Tool-call deltas (OpenAI streaming style: index, id and name first, then argument pieces) → canonical events.

Each call becomes ``tool_call_start`` (with a canonical index counting from 0,
its id and name), ``tool_call_delta`` events with argument text, and
``tool_call_end`` when the next call starts or the output ends. Argument text
that arrives before a call's name is known is held until the name arrives. A call
the source gives no id gets one from ``fleetgate.core.tool_call_ids``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fleetgate.core import events
from fleetgate.core.tool_call_ids import new_tool_call_id
from fleetgate.v1 import replica_pb2 as pb


@dataclass
class _PendingCall:
    call_id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


class ToolCallEvents:
    """Tracks the calls of one output; feed deltas in order, then ``close``."""

    def __init__(self) -> None:
        self._canonical: dict[int, int] = {}  # source index -> canonical index
        self._pending: dict[int, _PendingCall] = {}
        self._open: int | None = None
        self._started = 0

    @property
    def made_tool_calls(self) -> bool:
        return self._started > 0

    def delta(self, index: int, call_id: str | None, name: str | None, arguments: str | None) -> list[pb.GenerateEvent]:
        out: list[pb.GenerateEvent] = []
        if index not in self._canonical:
            pending = self._pending.setdefault(index, _PendingCall())
            pending.call_id = pending.call_id or call_id
            pending.name = pending.name or name
            if arguments:
                pending.arguments.append(arguments)
            if not pending.name:
                return out
            del self._pending[index]
            out += self._end_open()
            position = self._started
            self._started += 1
            self._canonical[index] = position
            self._open = position
            out.append(events.tool_call_start(position, pending.call_id or new_tool_call_id(), pending.name))
            held = "".join(pending.arguments)
            if held:
                out.append(events.tool_call_delta(position, held))
            return out
        if arguments and self._canonical[index] == self._open:
            out.append(events.tool_call_delta(self._open, arguments))
        return out

    def close(self) -> list[pb.GenerateEvent]:
        """End the open call (calls that never got a name are dropped)."""
        self._pending.clear()
        return self._end_open()

    def _end_open(self) -> list[pb.GenerateEvent]:
        if self._open is None:
            return []
        ended, self._open = self._open, None
        return [events.tool_call_end(ended)]
