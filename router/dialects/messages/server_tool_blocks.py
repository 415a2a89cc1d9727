"""Server-side tool calls as Anthropic content blocks (pure): a ``server_tool_use`` block and its result block.

A call the router's tool loop ran (``router.server_tools``) is shown as Anthropic shows its own server tools:
``server_tool_use`` (``srvtoolu_…`` id; name ``code_execution`` with ``{"code"}`` for python,
``bash_code_execution`` with ``{"command"}`` for bash, ``web_search`` with ``{"query"}``) followed by
``code_execution_tool_result`` / ``bash_code_execution_tool_result`` (``stdout``, ``stderr``, ``return_code``)
or ``web_search_tool_result`` (the results' title and url; a failed search is a
``web_search_tool_result_error``). A failed run keeps its output in ``stderr`` and a non-zero ``return_code``.
A stream sends each block whole: ``content_block_start`` with the block, ``content_block_stop``.
"""

from __future__ import annotations

from typing import Any

import orjson

from fleetgate.router.dialects.messages.arguments import tool_input
from fleetgate.v1 import replica_pb2 as pb

SERVER_TOOL_USE_PREFIX = "srvtoolu_"
_NAMES = {"python": "code_execution", "bash": "bash_code_execution", "web_search": "web_search"}


def server_tool_use_id(call_id: str) -> str:
    return call_id if call_id.startswith(SERVER_TOOL_USE_PREFIX) else SERVER_TOOL_USE_PREFIX + call_id.split("_", 1)[-1]


def server_tool_blocks(call: pb.ServerToolCall) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``server_tool_use`` block of ``call`` and its result block."""
    use_id = server_tool_use_id(call.id)
    use = {"type": "server_tool_use", "id": use_id, "name": _NAMES.get(call.tool, call.name),
           "input": tool_input(call.arguments)}
    detail = orjson.loads(call.detail_json) if call.detail_json else {}
    if call.tool == "web_search":
        if call.is_error:
            content: Any = {"type": "web_search_tool_result_error", "error_code": "unavailable"}
        else:
            content = [{"type": "web_search_result", "title": r.get("title", ""), "url": r.get("url", ""),
                        "encrypted_content": "", "page_age": None} for r in detail.get("results", [])]
        return use, {"type": "web_search_tool_result", "tool_use_id": use_id, "content": content}
    kind = "bash_code_execution" if call.tool == "bash" else "code_execution"
    stdout, stderr = str(detail.get("stdout", call.output)), str(detail.get("stderr", ""))
    code = int(detail.get("exit_code", 1 if call.is_error else 0))
    if call.is_error and code == 0:
        code = 1
    if call.is_error and not stderr:
        stderr, stdout = call.output, ""
    result = {"type": f"{kind}_result", "stdout": stdout, "stderr": stderr, "return_code": code, "content": []}
    return use, {"type": f"{kind}_tool_result", "tool_use_id": use_id, "content": result}
