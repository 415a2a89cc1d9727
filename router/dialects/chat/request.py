"""Chat Completions request -> canonical ``pb.GenerateRequest`` (pure translation).

- system / developer / user / assistant / tool messages map to their canonical
  roles; content is a string or text / image parts (images only in user
  messages; refusal parts of replayed assistant messages are dropped);
- assistant ``tool_calls`` (arguments JSON), ``reasoning`` / ``reasoning_content``
  replayed; a tool message needs ``tool_call_id`` and gets the called tool's name;
- ``tools`` (function tools), ``tool_choice`` auto / none / required / named,
  ``parallel_tool_calls`` (default true);
- ``response_format`` text / json_object / json_schema; ``reasoning_effort``;
- sampling: ``max_completion_tokens`` (or ``max_tokens``), ``stop``, ``seed``,
  ``temperature``, ``top_p``, ``top_k``, penalties; ``n`` must be 1 and
  ``logprobs`` is not supported.
"""

from __future__ import annotations

from typing import Any

import orjson

from fleetgate.router.canonical import tools as canonical_tools
from fleetgate.router.canonical.bounds import check_depth
from fleetgate.router.canonical.content import image_part, text_part
from fleetgate.router.canonical.tool_results import ToolCallNames, tool_result_message
from fleetgate.router.dialects.chat import protocol as wire
from fleetgate.router.dialects.openai_common import canonical_reasoning, canonical_sampling, check_single_choice
from fleetgate.router.errors import invalid_request
from fleetgate.v1 import replica_pb2 as pb

_ROLES = {
    "system": pb.ROLE_SYSTEM,
    "developer": pb.ROLE_DEVELOPER,
    "user": pb.ROLE_USER,
    "assistant": pb.ROLE_ASSISTANT,
    "tool": pb.ROLE_TOOL,
}


def to_generate_request(request: wire.ChatCompletionRequest) -> pb.GenerateRequest:
    check_single_choice(request.n)
    if request.logprobs:
        raise invalid_request("logprobs are not supported", "logprobs")
    tools = [
        canonical_tools.canonical_tool(
            t.function.name, t.function.description, t.function.parameters, f"tools[{i}].function"
        )
        for i, t in enumerate(request.tools or [])
    ]
    canonical_tools.check_unique_names(tools, "tools")
    choice = _tool_choice(request.tool_choice)
    canonical_tools.check_tool_choice(choice, tools, "tool_choice", request.server_tool_names)
    enable_reasoning, effort = canonical_reasoning(request.reasoning_effort)
    generate = pb.GenerateRequest(
        model=request.model,
        messages=to_messages(request.messages),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        sampling=canonical_sampling(request, request.max_completion_tokens or request.max_tokens),
        reasoning_effort=effort,
        enable_reasoning=enable_reasoning,
    )
    if request.response_format is not None:
        generate.response_format.CopyFrom(_response_format(request.response_format))
    return generate


def _tool_choice(choice: str | wire.NamedToolChoice | None) -> pb.ToolChoice:
    if isinstance(choice, wire.NamedToolChoice):
        return canonical_tools.named_tool_choice(choice.function.name)
    return canonical_tools.tool_choice_mode(choice)


def _response_format(fmt: wire.ResponseFormat) -> pb.ResponseFormat:
    if fmt.type == "json_object":
        return canonical_tools.JSON_OBJECT_FORMAT
    if fmt.type == "json_schema":
        if fmt.json_schema is None or fmt.json_schema.schema_ is None:
            raise invalid_request("response_format json_schema needs json_schema.schema", "response_format.json_schema")
        return canonical_tools.canonical_json_schema_format(
            fmt.json_schema.name, fmt.json_schema.schema_, "response_format.json_schema.schema"
        )
    return canonical_tools.TEXT_FORMAT


def to_messages(messages: list[wire.ChatMessage]) -> list[pb.Message]:
    tool_names = ToolCallNames()
    out: list[pb.Message] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if message.role == "tool":
            out.append(_tool_result(message, param, tool_names))
            continue
        canonical = pb.Message(role=_ROLES[message.role], name=message.name or "")
        if message.role == "assistant":
            canonical.content.extend(_content(message.content, f"{param}.content", images=False, drop_refusals=True))
            canonical.reasoning = message.reasoning or message.reasoning_content or ""
            for position, call in enumerate(message.tool_calls or []):
                arguments = _arguments(call.function.arguments, f"{param}.tool_calls[{position}].function.arguments")
                canonical.tool_calls.append(pb.ToolCall(id=call.id, name=call.function.name, arguments=arguments))
            tool_names.remember(canonical.tool_calls)
            if not canonical.content and not canonical.tool_calls and not canonical.reasoning:
                raise invalid_request(f"{param}: an assistant message needs content or tool_calls", f"{param}.content")
        else:
            canonical.content.extend(_required_content(message, param, images=message.role == "user"))
        out.append(canonical)
    return out


def _required_content(message: wire.ChatMessage, param: str, *, images: bool) -> list[pb.ContentPart]:
    """The content of a message that must have some (all but assistant messages)."""
    if message.content is None:
        raise invalid_request(f"{param}: a {message.role} message needs content", f"{param}.content")
    return _content(message.content, f"{param}.content", images=images, drop_refusals=False)


def _tool_result(message: wire.ChatMessage, param: str, tool_names: ToolCallNames) -> pb.Message:
    """A tool message: the result of the call it names, named after its tool unless it names one itself."""
    content = _required_content(message, param, images=False)
    if not message.tool_call_id:
        raise invalid_request(f"{param}: a tool message needs tool_call_id", f"{param}.tool_call_id")
    return tool_result_message(message.tool_call_id, message.name or tool_names.name(message.tool_call_id), content)


def _content(
    content: str | list[Any] | None, param: str, *, images: bool, drop_refusals: bool
) -> list[pb.ContentPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)] if content else []
    parts: list[pb.ContentPart] = []
    for position, part in enumerate(content):
        where = f"{param}[{position}]"
        if isinstance(part, wire.TextPart):
            parts.append(text_part(part.text))
        elif isinstance(part, wire.ImagePart):
            if not images:
                raise invalid_request(f"{where}: images are only accepted in user messages", where)
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            parts.append(image_part(url, f"{where}.image_url"))
        elif not drop_refusals:
            raise invalid_request(f"{where}: refusal parts are only accepted in assistant messages", where)
    return parts


def _arguments(arguments: str | dict[str, Any], param: str) -> str:
    if isinstance(arguments, str):
        return arguments
    check_depth(arguments, param)
    return orjson.dumps(arguments).decode()
