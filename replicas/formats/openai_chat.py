"""Canonical request → OpenAI chat-completions shapes (messages, tools, tool choice), as plain dicts.

These are the inputs vLLM's chat renderer (chat templates) and its reasoning /
tool parsers take. Pure translation: no I/O, no vLLM import.
"""

from __future__ import annotations

import json
from typing import Any

from fleetgate.v1 import replica_pb2 as pb

_ROLES = {
    pb.ROLE_SYSTEM: "system",
    pb.ROLE_DEVELOPER: "developer",
    pb.ROLE_USER: "user",
    pb.ROLE_ASSISTANT: "assistant",
    pb.ROLE_TOOL: "tool",
}
_EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

Mode = pb.ToolChoice.Mode


def content_parts(message: pb.Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if part.WhichOneof("part") == "image_url":
            parts.append({"type": "image_url", "image_url": {"url": part.image_url}})
        else:
            parts.append({"type": "text", "text": part.text})
    return parts


# Text parts of one message are joined as vLLM joins OpenAI content parts: a line apart, never glued,
# so a block boundary stays visible to the model and to vLLM's per-line handling (its Claude Code
# attribution-header strip drops the first line of a system text, and only that line).
PART_SEPARATOR = "\n"


def message_text(message: pb.Message) -> str:
    return PART_SEPARATOR.join(part.text for part in message.content if part.WhichOneof("part") == "text")


def chat_message(message: pb.Message) -> dict[str, Any]:
    role = _ROLES.get(message.role)
    if role is None:
        raise ValueError(f"message role {pb.Role.Name(message.role)} is not allowed")
    out: dict[str, Any] = {"role": role}
    parts = content_parts(message)
    if all(p["type"] == "text" for p in parts):
        # Plain strings suit every chat template; parts only when there are images.
        out["content"] = message_text(message) if parts or role != "assistant" else None
    else:
        out["content"] = parts
    if message.name:
        out["name"] = message.name
    if role == "assistant":
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments or "{}"},
                }
                for call in message.tool_calls
            ]
        if message.reasoning:
            out["reasoning"] = message.reasoning
    if role == "tool":
        out["tool_call_id"] = message.tool_call_id
    return out


def fold_late_system_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For chat templates that refuse a system message after the conversation started (Gemma,
    Mistral, ...): each such message becomes a ``<system>`` block at the start of the next user
    message, or a user message of its own when no user message follows. Leading system messages
    stay where they are."""
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    started = False
    for message in messages:
        if message["role"] == "system" and started:
            pending.append(f"<system>\n{message['content']}\n</system>")
            continue
        started = started or message["role"] != "system"
        if pending and message["role"] == "user":
            message = {**message, "content": _prepend_text(PART_SEPARATOR.join(pending), message["content"])}
            pending = []
        out.append(message)
    if pending:
        out.append({"role": "user", "content": PART_SEPARATOR.join(pending)})
    return out


def _prepend_text(text: str, content: str | list[dict[str, Any]] | None) -> str | list[dict[str, Any]]:
    if isinstance(content, list):
        return [{"type": "text", "text": text}, *content]
    return f"{text}{PART_SEPARATOR}{content}" if content else text


def chat_messages(request: pb.GenerateRequest) -> list[dict[str, Any]]:
    return [chat_message(m) for m in request.messages]


def tool_parameters(tool: pb.Tool) -> dict[str, Any]:
    if not tool.parameters_json:
        return dict(_EMPTY_PARAMETERS)
    parameters = json.loads(tool.parameters_json)
    if not isinstance(parameters, dict):
        raise ValueError(f"tool {tool.name!r}: parameters must be a JSON schema object")
    return parameters


def chat_tools(request: pb.GenerateRequest) -> list[dict[str, Any]] | None:
    """The request's tools as OpenAI function tools, or None when it offers none."""
    if not request.tools:
        return None
    tools = []
    for tool in request.tools:
        function: dict[str, Any] = {"name": tool.name, "parameters": tool_parameters(tool)}
        if tool.description:
            function["description"] = tool.description
        tools.append({"type": "function", "function": function})
    return tools


def chat_tool_choice(request: pb.GenerateRequest) -> str | dict[str, Any]:
    """``none`` / ``auto`` / ``required`` / a named function; ``none`` when no tools are offered."""
    if not request.tools:
        return "none"
    mode = request.tool_choice.mode
    if mode == Mode.MODE_NAMED:
        return {"type": "function", "function": {"name": request.tool_choice.name}}
    return {Mode.MODE_NONE: "none", Mode.MODE_REQUIRED: "required"}.get(mode, "auto")


def forces_tool_call(request: pb.GenerateRequest) -> bool:
    """True when the tool choice makes a tool call mandatory (required, or a named tool)."""
    return bool(request.tools) and request.tool_choice.mode in (Mode.MODE_REQUIRED, Mode.MODE_NAMED)


def continues_final_message(request: pb.GenerateRequest) -> bool:
    """A conversation ending in an assistant message without tool calls is a prefill the model continues."""
    if not request.messages:
        return False
    last = request.messages[-1]
    return last.role == pb.ROLE_ASSISTANT and not last.tool_calls


def chat_template_kwargs(request: pb.GenerateRequest, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Arguments for the chat template (vLLM drops those a template does not use)."""
    prefill = continues_final_message(request)
    kwargs: dict[str, Any] = {
        "add_generation_prompt": not prefill,
        "continue_final_message": prefill,
        "tools": tools,
    }
    if request.reasoning_effort:
        kwargs["reasoning_effort"] = request.reasoning_effort
    if request.HasField("enable_reasoning"):
        # The switch templates use for thinking on/off (Qwen3, DeepSeek, Granite, ...).
        kwargs["enable_thinking"] = request.enable_reasoning
        kwargs["thinking"] = request.enable_reasoning
    return kwargs
