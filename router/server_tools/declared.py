"""What a request asks of server-side tools, in one shape for every dialect (pure).

A dialect's translation fills a ``ServerToolRequest`` from its own fields: built-in tools (``python``,
``bash``, ``web_search``), remote MCP servers with their approval rules, the session whose python state and
working directory the calls share, and the client's answers to approval requests of an earlier response.
``builtins`` are asked for by name (``enable_tools``: refused when they cannot be served), ``hosted_builtins``
only offered (Responses' ``web_search`` and ``code_interpreter``: simply not offered to the model when the
deployment or the key cannot have them, as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from fleetgate.v1 import toolbox_pb2 as tpb

BuiltinTool = Literal["python", "bash", "web_search"]
BUILTIN_TOOLS: tuple[BuiltinTool, ...] = ("python", "bash", "web_search")


@dataclass(frozen=True)
class ApprovalRule:
    """Which of a server's tools need the client's approval before they run (Responses ``require_approval``:
    ``"always"`` / ``"never"`` / ``{"always": {"tool_names"}, "never": {"tool_names"}}``; OpenAI's default is
    always)."""

    default_required: bool = True
    always: frozenset[str] = frozenset()
    never: frozenset[str] = frozenset()

    def required(self, tool: str) -> bool:
        if tool in self.always:
            return True
        if tool in self.never:
            return False
        return self.default_required


@dataclass(frozen=True)
class McpServerSpec:
    """One remote MCP server a request names."""

    label: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    # Only these of its tools are offered (None: all it lists).
    allowed_tools: frozenset[str] | None = None
    approval: ApprovalRule = ApprovalRule()
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    # Where the request declared it (tools[i]): the 400's param.
    param: str = "tools"
    # Its tools as the conversation already lists them: offered without listing the server again (None: list).
    listed: tuple[tpb.McpTool, ...] | None = None


@dataclass(frozen=True)
class ApprovalAnswer:
    """The client's answer to an ``mcp_approval_request`` of an earlier response, with what it asked for."""

    approval_request_id: str
    approve: bool
    server_label: str
    name: str
    arguments: str
    reason: str | None = None


@dataclass(frozen=True)
class ServerToolRequest:
    builtins: tuple[BuiltinTool, ...] = ()
    hosted_builtins: tuple[BuiltinTool, ...] = ()
    mcp_servers: tuple[McpServerSpec, ...] = ()
    # Python state and the working directory are kept per session ("" : a fresh sandbox per call).
    session_id: str = ""
    approvals: tuple[ApprovalAnswer, ...] = ()
    # The request field that asked (enable_tools, tools): the 400's / 403's param.
    param: str = "tools"

    @property
    def empty(self) -> bool:
        return not (self.builtins or self.hosted_builtins or self.mcp_servers or self.approvals)
