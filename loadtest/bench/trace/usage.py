"""Prompt and cached tokens from the usage a finished stream reported, in each dialect's own words.

Chat: ``usage.prompt_tokens`` and ``prompt_tokens_details.cached_tokens`` (the usage
chunk); Messages: the final ``message_delta``'s ``input_tokens`` +
``cache_read_input_tokens`` + ``cache_creation_input_tokens`` (Anthropic's disjoint
parts) and ``cache_read_input_tokens``; Responses: the terminal response's
``usage.input_tokens`` and ``input_tokens_details.cached_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PromptUsage:
    prompt_tokens: int
    cached_tokens: int


def _int(mapping: object, key: str) -> int:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, int) else 0


def prompt_usage(dialect: str, last_payload: dict[str, Any] | None) -> PromptUsage | None:
    """The prompt split the stream's last payload reported; None when it carried no usage."""
    usage = (last_payload or {}).get("usage")
    if not isinstance(usage, dict):
        return None
    if dialect == "chat":
        return PromptUsage(_int(usage, "prompt_tokens"), _int(usage.get("prompt_tokens_details"), "cached_tokens"))
    if dialect == "messages":
        cached = _int(usage, "cache_read_input_tokens")
        return PromptUsage(_int(usage, "input_tokens") + cached + _int(usage, "cache_creation_input_tokens"), cached)
    return PromptUsage(_int(usage, "input_tokens"), _int(usage.get("input_tokens_details"), "cached_tokens"))
