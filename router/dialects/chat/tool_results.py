"""Server-side tool calls in Chat Completions (pure): the ``tool_result`` objects of the ``enable_tools``
shorthand.

Chat Completions has no place for a tool the server ran, so each is shown beside the standard output: streamed
as an extra SSE event named ``tool_result`` whose data is a ``chat.completion.chunk`` with ``choices: []`` and a
``tool_result`` object (SDKs that ignore event names see a chunk without choices, like the usage chunk), and in
the non-streamed answer as the top-level ``tool_results`` list, in the order the calls ran. A ``tool_result`` is
``{"id", "tool", "name", "arguments", "output", "is_error", "detail"}``: ``tool`` is ``python``, ``bash`` or
``web_search``, ``output`` what the model saw, ``detail`` the tool's own parts (python / bash: ``stdout``,
``stderr``, ``exit_code``, ``outcome``; web_search: ``query`` and ``results``). The model's own call of such a
tool is not shown as a ``tool_calls`` delta: the client has nothing to run.
"""

from __future__ import annotations

from typing import Any

import orjson

from fleetgate.v1 import replica_pb2 as pb

TOOL_RESULT_EVENT = "tool_result"


def tool_result(call: pb.ServerToolCall) -> dict[str, Any]:
    return {"id": call.id, "tool": call.tool, "name": call.name, "arguments": call.arguments, "output": call.output,
            "is_error": call.is_error, "detail": orjson.loads(call.detail_json) if call.detail_json else {}}
