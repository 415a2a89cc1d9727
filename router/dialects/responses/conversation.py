"""The conversation of a Responses request: stored items and canonical messages.

A conversation is a list of Responses items (``message``, ``function_call``,
``function_call_output``, ``reasoning``, ``compaction``, and the server-side tools'
``mcp_list_tools``, ``mcp_call``, ``mcp_approval_request`` / ``mcp_approval_response``,
``code_interpreter_call``, ``web_search_call``) as plain JSON dicts, each with an id and a status:
the shape ``GET /v1/responses/{id}/input_items`` returns and the shape
the response store keeps. ``normalize_items`` turns request input into that
shape; ``to_messages`` turns a whole conversation (history from
``previous_response_id`` + new input) into canonical ``pb.Message``s.

Pure translation, no I/O. All instructions and all system / developer content
become ONE leading system message, because strict chat templates reject a
second system message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import TypeAdapter

from fleetgate.router.canonical.ids import new_item_id
from fleetgate.router.canonical.tool_results import ToolCallNames, tool_result_message
from fleetgate.router.dialects.responses.namespaces import qualified_name
from fleetgate.router.dialects.responses.protocol import (
    CodeInterpreterCallItem,
    CompactionItem,
    ContentPart,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputFile,
    InputImage,
    InputItem,
    InputText,
    McpCallItem,
    MessageItem,
    OutputText,
    ReasoningItem,
    Refusal,
    UnknownItem,
    UnknownPart,
)
from fleetgate.router.errors import invalid_request
from fleetgate.v1 import replica_pb2 as pb

ConversationItem = dict[str, Any]

_ITEMS = TypeAdapter(list[InputItem])
ID_PREFIXES = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_",
               "compaction": "cmp_", "mcp_list_tools": "mcpl_", "mcp_call": "mcp_", "mcp_approval_request": "mcpr_",
               "mcp_approval_response": "mcpa_", "code_interpreter_call": "ci_", "web_search_call": "ws_"}
# How a compaction item's summary reaches the model: in the leading system message.
COMPACTION_PREAMBLE = "Summary of the conversation so far:"


def parse_items(items: Sequence[ConversationItem]) -> list[InputItem]:
    """Stored conversation dicts back into the wire models."""
    return _ITEMS.validate_python(list(items))


def normalize_items(items: Sequence[InputItem]) -> list[ConversationItem]:
    """Request input items as conversation dicts: ids and statuses filled in,
    string content expanded to parts, unknown item and part types dropped."""
    normalized: list[ConversationItem] = []
    for item in items:
        if isinstance(item, UnknownItem):
            continue
        data = item.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["id"] = item.id or new_item_id(ID_PREFIXES[item.type])
        data["status"] = item.status or "completed"
        if isinstance(item, MessageItem):
            data["content"] = _normalized_parts(item)
        elif isinstance(item, FunctionCallOutputItem) and not isinstance(item.output, str):
            data["output"] = [_dump_part(p) for p in item.output if not isinstance(p, UnknownPart)]
        elif isinstance(item, ReasoningItem):
            data.setdefault("summary", [])
        normalized.append(data)
    return normalized


def _normalized_parts(message: MessageItem) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        if message.role == "assistant":
            return [{"type": "output_text", "text": message.content, "annotations": []}]
        return [{"type": "input_text", "text": message.content}]
    return [_dump_part(p) for p in message.content if not isinstance(p, UnknownPart)]


def _dump_part(part: ContentPart) -> dict[str, Any]:
    return part.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------- conversation -> canonical messages


def to_messages(instructions: str | None, items: Sequence[InputItem]) -> list[pb.Message]:
    """Canonical messages for a conversation, with one leading system message."""
    system_texts: list[str] = [instructions] if instructions else []
    messages: list[pb.Message] = []
    call_names = ToolCallNames()
    pending_reasoning = ""
    for index, item in enumerate(items):
        if isinstance(item, MessageItem) and item.role in ("system", "developer"):
            text = _plain_text(item, index)
            if text:
                system_texts.append(text)
        elif isinstance(item, MessageItem) and item.role == "user":
            messages.append(pb.Message(role=pb.ROLE_USER, content=_content(item.content, f"input[{index}]")))
        elif isinstance(item, MessageItem):
            messages.append(
                pb.Message(
                    role=pb.ROLE_ASSISTANT,
                    content=_content(item.content, f"input[{index}]"),
                    reasoning=pending_reasoning,
                )
            )
            pending_reasoning = ""
        elif isinstance(item, ReasoningItem):
            pending_reasoning += item.text
        elif isinstance(item, CompactionItem) and item.summary:
            system_texts.append(f"{COMPACTION_PREAMBLE}\n{item.summary}")
        elif isinstance(item, FunctionCallItem):
            call = pb.ToolCall(id=item.call_id, name=qualified_name(item.namespace, item.name),
                               arguments=item.arguments or "{}")
            call_names.remember([call])
            if messages and messages[-1].role == pb.ROLE_ASSISTANT and not pending_reasoning:
                messages[-1].tool_calls.append(call)
            else:
                messages.append(pb.Message(role=pb.ROLE_ASSISTANT, reasoning=pending_reasoning, tool_calls=[call]))
                pending_reasoning = ""
        elif isinstance(item, (McpCallItem, CodeInterpreterCallItem)):
            # A server-side call that ran: the model sees it as its own call and the call's result.
            call, result = _server_call(item, index)
            messages.append(pb.Message(role=pb.ROLE_ASSISTANT, reasoning=pending_reasoning, tool_calls=[call]))
            pending_reasoning = ""
            messages.append(result)
        elif isinstance(item, FunctionCallOutputItem):
            call_id = item.call_id or item.id or ""
            # Named after the call it answers; an output without one (Codex's) names its tool itself.
            name = call_names.name(call_id) or (qualified_name(item.namespace, item.name) if item.name else "")
            messages.append(tool_result_message(call_id, name, _content(item.output, f"input[{index}].output")))
    if system_texts:
        system = pb.Message(role=pb.ROLE_SYSTEM, content=[pb.ContentPart(text="\n\n".join(system_texts))])
        messages.insert(0, system)
    return messages


def _server_call(item: McpCallItem | CodeInterpreterCallItem, index: int) -> tuple[pb.ToolCall, pb.Message]:
    call_id = item.id or f"call_input{index}"
    if isinstance(item, McpCallItem):
        call = pb.ToolCall(id=call_id, name=item.name, arguments=item.arguments or "{}")
        failed = item.output is None and item.error is not None
        output = item.output if item.output is not None else json.dumps(item.error)
    else:
        call = pb.ToolCall(id=call_id, name="python", arguments=json.dumps({"code": item.code or ""}))
        failed = item.status == "failed"
        output = "".join(str(o.get("logs", "")) for o in item.outputs or [] if isinstance(o, dict))
    result = pb.Message(role=pb.ROLE_TOOL, tool_call_id=call_id, name=call.name, is_error=failed,
                        content=[pb.ContentPart(text=output)])
    return call, result


def _plain_text(message: MessageItem, index: int) -> str:
    parts = _content(message.content, f"input[{index}]")
    if any(part.HasField("image_url") for part in parts):
        raise invalid_request("images are only supported in user messages and tool outputs", f"input[{index}].content")
    return "".join(part.text for part in parts)


def _content(content: str | Sequence[ContentPart], param: str) -> list[pb.ContentPart]:
    if isinstance(content, str):
        return [pb.ContentPart(text=content)]
    parts: list[pb.ContentPart] = []
    for position, part in enumerate(content):
        if isinstance(part, (InputText, OutputText)):
            parts.append(pb.ContentPart(text=part.text))
        elif isinstance(part, Refusal):
            parts.append(pb.ContentPart(text=part.refusal))
        elif isinstance(part, InputImage):
            if not part.image_url:
                raise invalid_request(
                    "input_image needs an image_url (an http(s) or data: URL); file_id is not supported",
                    f"{param}.content[{position}]",
                )
            parts.append(pb.ContentPart(image_url=part.image_url))
        elif isinstance(part, InputFile):
            raise invalid_request("input_file is not supported", f"{param}.content[{position}]")
    return parts
