"""A folded ``Completion`` → the non-streaming Anthropic ``Message`` body (pure).

Content blocks come in the order a stream sends them: ``thinking`` (with its
signature), ``text``, then one ``tool_use`` per call (``toolu_…`` id, the
arguments parsed into the ``input`` object). Empty text or thinking gives no block.
"""

from __future__ import annotations

from typing import Any

import orjson

from router.canonical.fold import Completion, ToolCallOut
from router.dialects.messages.signature import thinking_signature
from router.dialects.messages.usage import final_usage, stop_reason, stop_sequence

TOOL_USE_PREFIX = "toolu_"
# Prefixes replicas give canonical tool-call ids, replaced by Anthropic's.
_CANONICAL_CALL_PREFIXES = ("call_", "call-")
# Key of the ``input`` object when a model produced arguments that are not a JSON object.
RAW_ARGUMENTS_KEY = "raw_arguments"


def tool_use_id(call_id: str) -> str:
    """The ``toolu_…`` id clients see for a canonical tool-call id (deterministic: stream and JSON agree)."""
    if call_id.startswith(TOOL_USE_PREFIX):
        return call_id
    for prefix in _CANONICAL_CALL_PREFIXES:
        if call_id.startswith(prefix):
            return TOOL_USE_PREFIX + call_id[len(prefix):]
    return TOOL_USE_PREFIX + call_id


def tool_input(arguments: str) -> dict[str, Any]:
    """The tool call's arguments as the ``input`` object (``{}`` for none)."""
    if not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {RAW_ARGUMENTS_KEY: arguments}


def tool_use_block(call: ToolCallOut) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_use_id(call.id), "name": call.name, "input": tool_input(call.arguments)}


def content_blocks(completion: Completion) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if completion.reasoning:
        blocks.append({"type": "thinking", "thinking": completion.reasoning, "signature": thinking_signature(completion.reasoning)})
    if completion.text:
        blocks.append({"type": "text", "text": completion.text})
    blocks.extend(tool_use_block(call) for call in completion.tool_calls)
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
