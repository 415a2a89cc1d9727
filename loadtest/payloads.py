"""Request bodies for each load scenario, one builder per dialect and shape.

Prompts are short and varied so prefix caching does not make every request free.
"""

from __future__ import annotations

import random
from typing import Any

PROMPTS = (
    "Explain what a load balancer does in two sentences.",
    "Write a haiku about GPUs.",
    "List three uses of a hash map.",
    "What is the capital of France?",
    "Summarize the benefits of continuous batching.",
    "Give one tip for writing readable Python.",
)

WEATHER_TOOL_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}


def prompt() -> str:
    return random.choice(PROMPTS)


def chat(model: str, max_tokens: int, stream: bool, text: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": text or prompt()}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def chat_tools(model: str, messages: list[dict[str, Any]], tool_choice: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "messages": messages,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                                    "parameters": WEATHER_TOOL_PARAMETERS}}],
        "tool_choice": tool_choice,
        "max_tokens": max_tokens,
    }


def messages(model: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    return {"model": model, "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": prompt()}]}


def responses(model: str, max_tokens: int, stream: bool, previous_response_id: str | None = None,
              text: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "input": text or prompt(),
        "max_output_tokens": max_tokens,
        "stream": stream,
    }
    if previous_response_id:
        body["previous_response_id"] = previous_response_id
    return body
