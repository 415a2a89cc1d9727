"""One server-side tool call from request to result, and what it adds to the conversation (pure).

``HostedTool`` is what a name offered to the model stands for (a built-in, or a tool of an MCP server).
``tool_request`` makes the toolbox's ``RunToolRequest`` of a call, ``server_tool_event`` the ``server_tool``
event the client is shown once it ran (with the approval request it answers, when the client approved it), and
``continuation`` the two messages the model sees on its next turn: its own call (with any text and reasoning it
wrote before it) and the call's result. ``string_argument`` reads one field of a call's JSON arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import orjson

from fleetgate.router.server_tools.declared import McpServerSpec
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import toolbox_pb2 as tpb

ToolKind = Literal["python", "bash", "web_search", "mcp"]


@dataclass(frozen=True)
class HostedTool:
    kind: ToolKind
    # mcp: the server and the tool's name on it (the name offered to the model may be qualified).
    server: McpServerSpec | None = None
    mcp_tool: str = ""

    @property
    def needs_approval(self) -> bool:
        return self.server is not None and self.server.approval.required(self.mcp_tool)

    @property
    def called_name(self) -> str:
        """The tool's own name (an MCP tool's name on its server)."""
        return self.mcp_tool if self.kind == "mcp" else self.kind


@dataclass
class HeldCall:
    """A call of a server-side tool the model made, held back from the client while it streams."""

    index: int
    id: str
    name: str
    arguments: str = ""


def tool_request(call: HeldCall, tool: HostedTool, *, request_id: str, key_id: str,
                 session_id: str) -> tpb.RunToolRequest:
    request = tpb.RunToolRequest(request_id=request_id, tool=tool.kind, arguments_json=call.arguments or "{}",
                                 session_id=session_id, key_id=key_id)
    if tool.server is not None:
        server = tool.server
        request.mcp_server.CopyFrom(tpb.McpServer(label=server.label, url=server.url, headers=server.headers,
                                                  transport=server.transport))
        request.mcp_tool = tool.mcp_tool
    return request


def server_tool_event(call: HeldCall, tool: HostedTool, result: tpb.ToolResult, *,
                      approval_request_id: str = "") -> pb.GenerateEvent:
    """The event showing a call that ran, with its result (``approval_request_id``: the request it answers)."""
    return pb.GenerateEvent(server_tool=pb.ServerToolCall(
        id=call.id, tool=tool.kind, name=tool.called_name, server_label=tool.server.label if tool.server else "",
        arguments=call.arguments, output=result.output, is_error=result.is_error,
        detail_json=_detail(call, tool, result, approval_request_id),
    ))


def approval_request_event(call: HeldCall, tool: HostedTool) -> pb.GenerateEvent:
    """The event asking the client to approve a call before it runs (the loop ends the response with it)."""
    assert tool.server is not None
    return pb.GenerateEvent(server_tool=pb.ServerToolCall(
        id=call.id, tool="mcp_approval_request", name=tool.mcp_tool, server_label=tool.server.label,
        arguments=call.arguments,
    ))


def _detail(call: HeldCall, tool: HostedTool, result: tpb.ToolResult, approval_request_id: str) -> str:
    if tool.kind == "web_search":
        query = string_argument(call.arguments, "query") or ""
        results = orjson.loads(result.results_json) if result.results_json else []
        return orjson.dumps({"query": query, "results": results}).decode()
    if tool.kind in ("python", "bash"):
        return orjson.dumps({"stdout": result.stdout, "stderr": result.stderr, "exit_code": result.exit_code,
                             "outcome": result.outcome}).decode()
    detail: dict[str, str] = {"outcome": result.outcome}
    if approval_request_id:
        detail["approval_request_id"] = approval_request_id
    return orjson.dumps(detail).decode()


def string_argument(arguments: str, *names: str) -> str | None:
    """The first of ``names`` that the call's JSON arguments hold as a string (None: none, or not JSON)."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    return next((value[name] for name in names if isinstance(value.get(name), str)), None)


def continuation(text: str, reasoning: str, calls: list[tuple[HeldCall, pb.ServerToolCall]]) -> list[pb.Message]:
    """The assistant turn that made ``calls`` and one tool message per result, for the model's next turn."""
    assistant = pb.Message(role=pb.ROLE_ASSISTANT, reasoning=reasoning,
                           tool_calls=[pb.ToolCall(id=c.id, name=c.name, arguments=c.arguments or "{}")
                                       for c, _ in calls])
    if text:
        assistant.content.append(pb.ContentPart(text=text))
    results = [pb.Message(role=pb.ROLE_TOOL, tool_call_id=c.id, name=c.name, is_error=ran.is_error,
                          content=[pb.ContentPart(text=ran.output)]) for c, ran in calls]
    return [assistant, *results]
