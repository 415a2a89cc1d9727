"""ToolResult pieces every tool shares: a failed call's result and the reading of the model's arguments."""

from __future__ import annotations

import json
from typing import Any

from fleetgate.v1 import toolbox_pb2 as pb


def failed(output: str, outcome: str = "error") -> pb.ToolResult:
    """A call that did not run or did not work: the model sees ``output``."""
    return pb.ToolResult(output=output, is_error=True, outcome=outcome)


class BadArguments(ValueError):
    """The model's arguments are not what the tool takes (the message says what it expects)."""


def arguments_object(arguments_json: str, expected: str) -> dict[str, Any]:
    """The arguments as a JSON object ("" counts as {}), else ``BadArguments`` naming ``expected``."""
    try:
        value = json.loads(arguments_json) if arguments_json.strip() else {}
    except json.JSONDecodeError as exc:
        raise BadArguments(f"arguments are not valid JSON ({exc.msg}); expected {expected}") from None
    if not isinstance(value, dict):
        raise BadArguments(f"arguments must be a JSON object; expected {expected}")
    return value


def string_argument(arguments_json: str, name: str, expected: str) -> str:
    """The string argument ``name``, else ``BadArguments`` naming ``expected``."""
    value = arguments_object(arguments_json, expected).get(name)
    if not isinstance(value, str):
        raise BadArguments(f"argument {name!r} must be a string; expected {expected}")
    return value
