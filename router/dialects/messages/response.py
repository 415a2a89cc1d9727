"""A folded ``Completion`` → the non-streaming Anthropic ``Message`` body (pure).

Content blocks are the completion's segments in order, exactly the blocks a
stream sends (``router.canonical.segments``): ``thinking`` (with its signature),
``text``, and ``tool_use`` (``toolu_…`` id, the arguments parsed into the
``input`` object), as many of each as the model interleaved, and for each server-side tool call its
``server_tool_use`` and result blocks (``server_tool_blocks.py``). Also the body of
``count_tokens``'s answer.
"""

from __future__ import annotations

from typing import Any

from fleetgate.router.canonical.fold import Completion
from fleetgate.router.canonical.segments import Segment, ToolCallOut
from fleetgate.router.dialects.messages.arguments import tool_input
from fleetgate.router.dialects.messages.server_tool_blocks import server_tool_blocks
from fleetgate.router.dialects.messages.signature import thinking_signature
from fleetgate.router.dialects.messages.usage import final_usage, stop_reason, stop_sequence

TOOL_USE_PREFIX = "toolu_"
# Prefixes replicas give canonical tool-call ids, replaced by Anthropic's.
_CANONICAL_CALL_PREFIXES = ("call_", "call-")


def tool_use_id(call_id: str) -> str:
    """The ``toolu_…`` id clients see for a canonical tool-call id (deterministic: stream and JSON agree)."""
    if call_id.startswith(TOOL_USE_PREFIX):
        return call_id
    for prefix in _CANONICAL_CALL_PREFIXES:
        if call_id.startswith(prefix):
            return TOOL_USE_PREFIX + call_id[len(prefix):]
    return TOOL_USE_PREFIX + call_id


def tool_use_block(call: ToolCallOut) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": tool_input(call.arguments)}


def content_block(segment: Segment) -> dict[str, Any]:
    if segment.kind == "reasoning":
        return {"type": "thinking", "thinking": segment.text, "signature": thinking_signature(segment.text)}
    if segment.kind == "text":
        return {"type": "text", "text": segment.text}
    return tool_use_block(segment.tool_call())


def content_blocks(completion: Completion) -> list[dict[str, Any]]:
    """The message's blocks: one per segment, two for a server-side tool call (its use and its result)."""
    blocks: list[dict[str, Any]] = []
    for segment in completion.segments:
        if segment.server_tool is not None:
            blocks.extend(server_tool_blocks(segment.server_tool))
        else:
            blocks.append(content_block(segment))
    return blocks


def message_object(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    stop_reason: str | None,
    stop_sequence: str | None,
    usage: dict[str, Any],
) -> dict[str, Any]:
    """An Anthropic ``Message`` (``type: message``, ``role: assistant``)."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage,
    }


def message_body(message_id: str, model: str, completion: Completion) -> dict[str, Any]:
    """The ``Message`` object of a finished, successful completion."""
    return message_object(
        message_id,
        model,
        content_blocks(completion),
        stop_reason(completion.finish_reason, bool(completion.tool_calls)),
        stop_sequence(completion.finish_reason, completion.stop_sequence),
        final_usage(completion.usage),
    )


def count_tokens_body(input_tokens: int) -> dict[str, Any]:
    """The ``MessageTokensCount`` body."""
    return {"input_tokens": input_tokens}
