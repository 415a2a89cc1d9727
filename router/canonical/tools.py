"""Tools, tool choice and JSON-schema response formats: validation plus canonical constructors (pure).

Every dialect describes function tools and structured output differently, but
the checks are the same: a tool name clients and templates can carry, a
parameters object that is a valid JSON schema, unique names, a named tool
choice that names an offered tool, a ``required`` / named choice only when tools
are offered. ``param`` arguments are the client-facing path of the field, used
in the 400's ``param`` and message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import orjson

from fleetgate.router.errors import invalid_request
from fleetgate.v1 import replica_pb2 as pb

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
EMPTY_OBJECT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

Mode = pb.ToolChoice.Mode
TOOL_CHOICE_AUTO = pb.ToolChoice(mode=pb.ToolChoice.MODE_AUTO)
TOOL_CHOICE_NONE = pb.ToolChoice(mode=pb.ToolChoice.MODE_NONE)
TOOL_CHOICE_REQUIRED = pb.ToolChoice(mode=pb.ToolChoice.MODE_REQUIRED)
# The choices every dialect names by a word (Anthropic calls "required" "any"); a named tool is named_tool_choice.
TOOL_CHOICE_MODES: dict[str, pb.ToolChoice] = {
    "auto": TOOL_CHOICE_AUTO,
    "none": TOOL_CHOICE_NONE,
    "required": TOOL_CHOICE_REQUIRED,
    "any": TOOL_CHOICE_REQUIRED,
}


def check_json_schema(schema: Any, param: str) -> dict[str, Any]:
    """``schema`` if it is a JSON object that is a valid JSON schema; a 400 naming ``param`` otherwise."""
    if not isinstance(schema, Mapping):
        raise invalid_request(f"{param} must be a JSON schema object", param)
    checked = dict(schema)
    try:
        jsonschema.validators.validator_for(checked).check_schema(checked)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        message = f"{param} is not a valid JSON schema: {exc.message}" + (f" (at {where})" if where else "")
        raise invalid_request(message, param) from None
    return checked


def canonical_tool(name: str, description: str | None, parameters: Any, param: str) -> pb.Tool:
    """A validated ``pb.Tool``; ``parameters`` None means a tool without arguments."""
    if not TOOL_NAME.match(name or ""):
        raise invalid_request(
            f"{param}: tool name {name!r} must be 1-128 letters, digits, '_', '-', '.' or ':'", f"{param}.name"
        )
    schema = EMPTY_OBJECT_SCHEMA if parameters is None else check_json_schema(parameters, f"{param}.parameters")
    return pb.Tool(name=name, description=description or "", parameters_json=orjson.dumps(schema).decode())


def check_unique_names(tools: Sequence[pb.Tool], param: str) -> None:
    seen: set[str] = set()
    for tool in tools:
        if tool.name in seen:
            raise invalid_request(f"{param}: tool name {tool.name!r} is used more than once", param)
        seen.add(tool.name)


def tool_choice_mode(mode: str | None) -> pb.ToolChoice:
    """The canonical choice a dialect names by ``mode`` (``TOOL_CHOICE_MODES``); none given is ``auto``."""
    return TOOL_CHOICE_AUTO if mode is None else TOOL_CHOICE_MODES[mode]


def named_tool_choice(name: str) -> pb.ToolChoice:
    return pb.ToolChoice(mode=pb.ToolChoice.MODE_NAMED, name=name)


def check_tool_choice(choice: pb.ToolChoice, tools: Sequence[pb.Tool], param: str) -> None:
    """A ``required`` or named choice needs tools; a named choice must name one of them."""
    if choice.mode == pb.ToolChoice.MODE_REQUIRED and not tools:
        raise invalid_request(f"{param} requires a tool call but no tools were given", param)
    if choice.mode == pb.ToolChoice.MODE_NAMED and choice.name not in {t.name for t in tools}:
        raise invalid_request(f"{param} names tool {choice.name!r}, which is not in tools", param)


def canonical_json_schema_format(name: str | None, schema: Any, param: str) -> pb.ResponseFormat:
    """Structured output constrained to a validated JSON schema."""
    checked = check_json_schema(schema, param)
    return pb.ResponseFormat(
        kind=pb.ResponseFormat.KIND_JSON_SCHEMA, schema_json=orjson.dumps(checked).decode(), name=name or "response"
    )


JSON_OBJECT_FORMAT = pb.ResponseFormat(kind=pb.ResponseFormat.KIND_JSON_OBJECT)
TEXT_FORMAT = pb.ResponseFormat(kind=pb.ResponseFormat.KIND_TEXT)
