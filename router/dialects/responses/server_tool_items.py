"""Server-side tool calls as Responses output items and their stream events (pure).

One ``server_tool`` segment (``router.server_tools``) is one output item, streamed whole once the call ran:

- ``mcp_list_tools``: ``output_item.added`` -> ``mcp_list_tools.in_progress`` -> ``mcp_list_tools.completed``
  -> ``output_item.done`` (the tools listed);
- ``mcp`` (an ``mcp_call``): ``output_item.added`` -> ``mcp_call.in_progress`` -> ``mcp_call_arguments.delta``
  -> ``mcp_call_arguments.done`` -> ``mcp_call.completed`` (or ``mcp_call.failed``, the item's ``error`` a
  ``mcp_tool_execution_error``) -> ``output_item.done``;
- ``mcp_approval_request``: ``output_item.added`` -> ``output_item.done``;
- ``web_search`` (a ``web_search_call``): ``output_item.added`` -> ``web_search_call.in_progress`` ->
  ``web_search_call.searching`` -> ``web_search_call.completed`` -> ``output_item.done`` (``action`` the search
  with its query and sources);
- ``python`` (a ``code_interpreter_call``): ``output_item.added`` -> ``code_interpreter_call.in_progress`` ->
  ``code_interpreter_call_code.delta`` -> ``code_interpreter_call_code.done`` ->
  ``code_interpreter_call.interpreting`` -> ``code_interpreter_call.completed`` -> ``output_item.done``
  (``outputs``: the run's logs; ``container_id``: the session).

Item ids derive from the call's id (``mcp_``, ``mcpr_``, ``ws_``, ``ci_`` and its random part), so the stream,
the final object and the store agree, and an approval request's id is what the client's
``mcp_approval_response`` names. Events are ``(type, payload)`` dicts made through ``emit``, which numbers them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from openai.types.responses import ResponseCodeInterpreterToolCall, ResponseFunctionWebSearch
from openai.types.responses.mcp_tool_call_error import McpToolExecutionError
from openai.types.responses.response_code_interpreter_tool_call import OutputLogs
from openai.types.responses.response_function_web_search import ActionSearch, ActionSearchSource
from openai.types.responses.response_output_item import McpApprovalRequest, McpCall, McpListTools, McpListToolsTool

from fleetgate.router.server_tools.calls import string_argument
from fleetgate.v1 import replica_pb2 as pb

Emit = Callable[..., None]
"""``emit(type=..., **fields)``: the next numbered event of the response."""

_PREFIXES = {"mcp": "mcp_", "mcp_approval_request": "mcpr_", "web_search": "ws_", "python": "ci_", "bash": "ci_"}


def item_id(call: pb.ServerToolCall) -> str:
    """The output item's id for ``call`` (an MCP listing has its own already)."""
    prefix = _PREFIXES.get(call.tool)
    if prefix is None or call.id.startswith(prefix):
        return call.id
    return prefix + call.id.split("_", 1)[-1]


def server_tool_item(call: pb.ServerToolCall, *, in_progress: bool = False) -> Any:
    """The SDK output item of ``call`` (``in_progress``: as ``output_item.added`` shows it)."""
    detail = orjson.loads(call.detail_json) if call.detail_json else {}
    identity = item_id(call)
    if call.tool == "mcp_list_tools":
        tools = [] if in_progress else [McpListToolsTool(**tool) for tool in detail.get("tools", [])]
        return McpListTools(type="mcp_list_tools", id=identity, server_label=call.server_label, tools=tools)
    if call.tool == "mcp_approval_request":
        return McpApprovalRequest(type="mcp_approval_request", id=identity, name=call.name,
                                  server_label=call.server_label, arguments=call.arguments)
    if call.tool == "web_search":
        sources = [ActionSearchSource(type="url", url=r["url"]) for r in detail.get("results", []) if r.get("url")]
        action = ActionSearch(type="search", query=detail.get("query", ""), sources=None if in_progress else sources)
        return ResponseFunctionWebSearch(type="web_search_call", id=identity, action=action,
                                         status="in_progress" if in_progress else _status(call))
    if call.tool in ("python", "bash"):
        code = _code(call)
        outputs: list[Any] | None = None if in_progress else [OutputLogs(type="logs", logs=call.output)]
        return ResponseCodeInterpreterToolCall(
            type="code_interpreter_call", id=identity, code="" if in_progress else code, outputs=outputs,
            container_id=detail.get("container_id", ""), status="in_progress" if in_progress else _status(call))
    item = McpCall(type="mcp_call", id=identity, name=call.name, server_label=call.server_label,
                   arguments="" if in_progress else call.arguments, status="in_progress",
                   approval_request_id=detail.get("approval_request_id"))
    if not in_progress:
        item.status = _status(call)
        if call.is_error:
            item.error = McpToolExecutionError(type="mcp_tool_execution_error",
                                               content=[{"type": "text", "text": call.output}])
        else:
            item.output = call.output
    return item


def server_tool_events(call: pb.ServerToolCall, output_index: int, emit: Emit) -> None:
    """Emit the events of ``call`` between its ``output_item.added`` and ``output_item.done`` (the caller emits
    those two); see the module docstring."""
    where = {"item_id": item_id(call), "output_index": output_index}
    if call.tool == "mcp_list_tools":
        emit(type="response.mcp_list_tools.in_progress", **where)
        emit(type="response.mcp_list_tools.completed", **where)
    elif call.tool == "web_search":
        emit(type="response.web_search_call.in_progress", **where)
        emit(type="response.web_search_call.searching", **where)
        emit(type="response.web_search_call.completed", **where)
    elif call.tool in ("python", "bash"):
        code = _code(call)
        emit(type="response.code_interpreter_call.in_progress", **where)
        emit(type="response.code_interpreter_call_code.delta", delta=code, **where)
        emit(type="response.code_interpreter_call_code.done", code=code, **where)
        emit(type="response.code_interpreter_call.interpreting", **where)
        emit(type="response.code_interpreter_call.completed", **where)
    elif call.tool == "mcp":
        emit(type="response.mcp_call.in_progress", **where)
        emit(type="response.mcp_call_arguments.delta", delta=call.arguments, **where)
        emit(type="response.mcp_call_arguments.done", arguments=call.arguments, **where)
        emit(type="response.mcp_call.failed" if call.is_error else "response.mcp_call.completed", **where)


def _status(call: pb.ServerToolCall) -> Any:
    return "failed" if call.is_error else "completed"


def _code(call: pb.ServerToolCall) -> str:
    """The python code or bash command a call ran (its raw arguments when they hold neither)."""
    code = string_argument(call.arguments, "code", "command")
    return call.arguments if code is None else code
