"""Tool results in a conversation: the TOOL message answering a call, named after the tool called (pure).

Every dialect's history carries the assistant's tool calls and, later, their
results (Chat ``tool`` messages, Anthropic ``tool_result`` blocks, Responses
``function_call_output`` items), which refer to the call by id only; chat
templates want the tool's name on the result. A dialect reads its history with
one ``ToolCallNames``, remembering the calls as they go by, and makes each
result with ``tool_result_message``.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetgate.v1 import replica_pb2 as pb


class ToolCallNames:
    """The tool each call of a conversation called, by call id."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def remember(self, calls: Iterable[pb.ToolCall]) -> None:
        self._names.update((call.id, call.name) for call in calls)

    def name(self, call_id: str) -> str:
        """The called tool's name; "" for a call the conversation did not show."""
        return self._names.get(call_id, "")


def tool_result_message(
    call_id: str, name: str, content: Iterable[pb.ContentPart], *, is_error: bool = False
) -> pb.Message:
    """The TOOL message with ``content`` answering call ``call_id`` of tool ``name``."""
    return pb.Message(role=pb.ROLE_TOOL, tool_call_id=call_id, name=name, content=content, is_error=is_error)
