"""Responses request -> canonical ``pb.GenerateRequest`` (pure translation).

The conversation (history rebuilt from ``previous_response_id`` plus this
request's input, see ``conversation.py``) becomes the messages; tools,
tool_choice, text.format, reasoning.effort and sampling map one to one.
The functions of ``namespace`` tools are offered as ``NAMESPACE.FUNCTION``
(``namespaces.py``). Hosted tools (``web_search``, ...) are not offered to the
model, and non-function tool choices are ``auto``. ``instructions`` come
from this request only: they are never inherited from a previous response.
"""

from __future__ import annotations

from collections.abc import Sequence

from fleetgate.router.canonical.reasoning import REASONING_OFF, canonical_effort
from fleetgate.router.canonical.tools import (
    JSON_OBJECT_FORMAT,
    TEXT_FORMAT,
    canonical_json_schema_format,
    canonical_tool,
    check_tool_choice,
    check_unique_names,
    named_tool_choice,
    tool_choice_mode,
)
from fleetgate.router.dialects.responses.conversation import ConversationItem, parse_items, to_messages
from fleetgate.router.dialects.responses.namespaces import qualified_name
from fleetgate.router.dialects.responses.protocol import (
    FunctionTool,
    FunctionToolChoice,
    NamespaceTool,
    ResponsesRequest,
    TextFormat,
)
from fleetgate.v1 import replica_pb2 as pb


def to_generate_request(
    request: ResponsesRequest, conversation: Sequence[ConversationItem], request_id: str
) -> pb.GenerateRequest:
    """The canonical request for ``request`` over the whole ``conversation``."""
    tools = [canonical_tool(name, t.description, t.parameters, param) for name, t, param in _offered_functions(request)]
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
            temperature=request.temperature, top_p=request.top_p, max_tokens=request.max_output_tokens,
            presence_penalty=request.presence_penalty, frequency_penalty=request.frequency_penalty,
        ),
    )
    if request.text and request.text.format:
        generate.response_format.CopyFrom(_response_format(request.text.format))
    effort = request.reasoning.effort if request.reasoning else None
    if effort == REASONING_OFF:
        generate.enable_reasoning = False
    elif effort:
        generate.reasoning_effort = canonical_effort(effort)
    return generate


def _offered_functions(request: ResponsesRequest) -> list[tuple[str, FunctionTool, str]]:
    """``(name offered to the model, tool, where it is)``: function tools and the functions of namespace tools."""
    offered: list[tuple[str, FunctionTool, str]] = []
    for i, tool in enumerate(request.tools):
        if isinstance(tool, FunctionTool):
            offered.append((tool.name, tool, f"tools[{i}]"))
        elif isinstance(tool, NamespaceTool):
            offered.extend((qualified_name(tool.name, inner.name), inner, f"tools[{i}].tools[{j}]")
                           for j, inner in enumerate(tool.tools) if isinstance(inner, FunctionTool))
    return offered


def _tool_choice(request: ResponsesRequest) -> pb.ToolChoice:
    choice = request.tool_choice
    if isinstance(choice, FunctionToolChoice):
        return named_tool_choice(choice.name)
    # A hosted tool's choice (web_search, ...) is auto: only functions are offered.
    return tool_choice_mode(choice if isinstance(choice, str) else None)


def _response_format(fmt: TextFormat) -> pb.ResponseFormat:
    if fmt.type == "json_object":
        return JSON_OBJECT_FORMAT
    if fmt.type == "json_schema":
        return canonical_json_schema_format(fmt.name, fmt.schema_, "text.format.schema")
    return TEXT_FORMAT
