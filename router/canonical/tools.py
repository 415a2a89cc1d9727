"""Tools, tool choice and JSON-schema response formats: validation plus canonical constructors (pure).

Every dialect describes function tools and structured output differently, but
the checks are the same: a tool name clients and templates can carry, a
parameters object that is a valid JSON schema, unique names, a named tool
choice that names an offered tool, a ``required`` / named choice only when tools
are offered. ``param`` arguments are the client-facing path of the field, used
in the 400's ``param`` and message.

A schema is refused unless it nests at most ``bounds.MAX_JSON_DEPTH`` levels and every ``$ref`` in it
resolves within the schema itself (``check_refs``): a remote or dangling reference, or one that only
leads back to itself through other references, is a 400 here, never a failure in an engine.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jsonschema
import orjson
import referencing
import referencing.exceptions
import referencing.jsonschema

from fleetgate.router.canonical.bounds import check_depth
from fleetgate.router.errors import clipped, echoed, invalid_request
from fleetgate.v1 import replica_pb2 as pb

if TYPE_CHECKING:  # referencing exports the class only from its core module
    from referencing._core import Resolver

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
    check_depth(checked, param)
    validator = jsonschema.validators.validator_for(checked)
    try:
        validator.check_schema(checked)
    except jsonschema.SchemaError as exc:
        where = clipped("/".join(str(p) for p in exc.path))
        message = f"{param} is not a valid JSON schema: {clipped(exc.message)}" + (f" (at {where})" if where else "")
        raise invalid_request(message, param) from None
    except RecursionError:  # a shape that costs the metaschema check more frames per level than check_depth allows
        raise invalid_request(f"{param} nests too deeply to be checked", param) from None
    check_refs(checked, validator, param)
    return checked


# Keywords whose values are data, not subschemas: a `$ref` key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})


def check_refs(schema: dict[str, Any], validator: type[jsonschema.protocols.Validator], param: str) -> None:
    """Every ``$ref`` in ``schema`` resolves within it, and none leads only back to itself; a 400 otherwise."""
    specification = referencing.jsonschema.specification_with(validator.META_SCHEMA.get("$schema", ""))
    resource = specification.create_resource(schema)
    base_uri = resource.id() or ""
    root = referencing.Registry().with_resource(base_uri, resource).crawl().resolver(base_uri)
    pending: list[tuple[Any, Resolver[Any]]] = [(schema, root)]
    while pending:
        node, resolver = pending.pop()
        if isinstance(node, list):
            pending.extend((item, resolver) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if node is not schema and isinstance(node.get("$id"), str):
            resolver = resolver.in_subresource(specification.create_resource(node))
        ref = node.get("$ref")
        if isinstance(ref, str):
            _check_ref(ref, resolver, param)
        pending.extend((value, resolver) for key, value in node.items() if key not in _DATA_KEYWORDS)


def _check_ref(ref: str, resolver: Resolver[Any], param: str) -> None:
    seen = {ref}
    while True:
        try:
            resolved = resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            raise invalid_request(
                f"{param}: $ref {echoed(ref)} does not resolve (only references within the schema are supported)",
                param,
            ) from None
        target = resolved.contents
        # A target that is nothing but another reference: follow it, a cycle of those describes no value.
        if not (isinstance(target, dict) and set(target) == {"$ref"} and isinstance(target["$ref"], str)):
            return
        ref, resolver = target["$ref"], resolved.resolver
        if ref in seen:
            raise invalid_request(f"{param}: $ref {echoed(ref)} only refers back to itself", param)
        seen.add(ref)


def canonical_tool(name: str, description: str | None, parameters: Any, param: str) -> pb.Tool:
    """A validated ``pb.Tool``; ``parameters`` None means a tool without arguments."""
    if not TOOL_NAME.match(name or ""):
        raise invalid_request(
            f"{param}: tool name {echoed(name or '')} must be 1-128 letters, digits, '_', '-', '.' or ':'",
            f"{param}.name",
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


def check_tool_choice(
    choice: pb.ToolChoice, tools: Sequence[pb.Tool], param: str, server_tools: Collection[str] = ()
) -> None:
    """A ``required`` or named choice needs tools; a named choice must name one of them (or one of the
    ``server_tools`` the request asks the server to run, which are added to its tools later)."""
    if choice.mode == pb.ToolChoice.MODE_REQUIRED and not tools and not server_tools:
        raise invalid_request(f"{param} requires a tool call but no tools were given", param)
    if choice.mode == pb.ToolChoice.MODE_NAMED and choice.name not in {t.name for t in tools} | set(server_tools):
        raise invalid_request(f"{param} names tool {echoed(choice.name)}, which is not in tools", param)


def canonical_json_schema_format(name: str | None, schema: Any, param: str) -> pb.ResponseFormat:
    """Structured output constrained to a validated JSON schema."""
    checked = check_json_schema(schema, param)
    return pb.ResponseFormat(
        kind=pb.ResponseFormat.KIND_JSON_SCHEMA, schema_json=orjson.dumps(checked).decode(), name=name or "response"
    )


JSON_OBJECT_FORMAT = pb.ResponseFormat(kind=pb.ResponseFormat.KIND_JSON_OBJECT)
TEXT_FORMAT = pb.ResponseFormat(kind=pb.ResponseFormat.KIND_TEXT)
