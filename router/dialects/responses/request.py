"""Responses request -> canonical ``pb.GenerateRequest`` (pure translation).

The conversation (history rebuilt from ``previous_response_id`` plus this
request's input, see ``conversation.py``) becomes the messages; tools,
tool_choice, text.format, reasoning.effort and sampling map one to one.
Hosted tools and non-function tool choices are ignored. ``instructions`` come
from this request only: they are never inherited from a previous response.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetgate.v1 import replica_pb2 as pb
from fleetgate.router.canonical.tools import (
    JSON_OBJECT_FORMAT,
    TEXT_FORMAT,
    canonical_json_schema_format,
    canonical_tool,
    check_tool_choice,
    check_unique_names,
    named_tool_choice,
)
from fleetgate.router.dialects.responses.conversation import ConversationItem, parse_items, to_messages
from fleetgate.router.dialects.responses.protocol import FunctionTool, FunctionToolChoice, ResponsesRequest, TextFormat

_MODES = {
    "auto": pb.ToolChoice.MODE_AUTO,
    "none": pb.ToolChoice.MODE_NONE,
    "required": pb.ToolChoice.MODE_REQUIRED,
}
# Canonical efforts are "", low, medium, high; "none" turns reasoning off instead.
_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def to_generate_request(
    request: ResponsesRequest, conversation: Sequence[ConversationItem], request_id: str
) -> pb.GenerateRequest:
    """The canonical request for ``request`` over the whole ``conversation``."""
    tools = [canonical_tool(t.name, t.description, t.parameters, f"tools[{i}]") for i, t in _indexed_functions(request)]
    check_unique_names(tools, "tools")
    tool_choice = _tool_choice(request)
    check_tool_choice(tool_choice, tools, "tool_choice")
    generate = pb.GenerateRequest(
        request_id=request_id,
        model=request.model,
        messages=to_messages(request.instructions, parse_items(conversation)),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=request.parallel_tool_calls,
        sampling=pb.Sampling(
            temperature=request.temperature, top_p=request.top_p, max_tokens=request.max_output_tokens
        ),
    )
    if request.text and request.text.format:
        generate.response_format.CopyFrom(_response_format(request.text.format))
    effort = request.reasoning.effort if request.reasoning else None
    if effort == "none":
        generate.enable_reasoning = False
    elif effort:
        generate.reasoning_effort = _EFFORTS[effort]
    return generate


def _indexed_functions(request: ResponsesRequest) -> list[tuple[int, FunctionTool]]:
    return [(i, tool) for i, tool in enumerate(request.tools) if isinstance(tool, FunctionTool)]


def _tool_choice(request: ResponsesRequest) -> pb.ToolChoice:
    choice = request.tool_choice
    if isinstance(choice, str):
        return pb.ToolChoice(mode=_MODES[choice])
    if isinstance(choice, FunctionToolChoice):
        return named_tool_choice(choice.name)
    return pb.ToolChoice(mode=pb.ToolChoice.MODE_AUTO)


def _response_format(fmt: TextFormat) -> pb.ResponseFormat:
    if fmt.type == "json_object":
        return JSON_OBJECT_FORMAT
    if fmt.type == "json_schema":
        return canonical_json_schema_format(fmt.name, fmt.schema_, "text.format.schema")
    return TEXT_FORMAT
