"""A tool call's arguments as Anthropic's ``input`` object (pure)."""

from __future__ import annotations

from typing import Any

import orjson

# Key of the ``input`` object when a model produced arguments that are not a JSON object.
RAW_ARGUMENTS_KEY = "raw_arguments"


def tool_input(arguments: str) -> dict[str, Any]:
    """The tool call's arguments as the ``input`` object (``{}`` for none)."""
    if not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {RAW_ARGUMENTS_KEY: arguments}
