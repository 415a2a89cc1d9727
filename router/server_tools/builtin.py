"""The built-in server-side tools as the model is offered them (pure): name, description, arguments schema."""

from __future__ import annotations

import orjson

from fleetgate.router.server_tools.declared import BuiltinTool
from fleetgate.v1 import replica_pb2 as pb

_DEFINITIONS: dict[BuiltinTool, tuple[str, dict[str, object]]] = {
    "python": (
        "Run Python 3 code in a sandbox (no network) and get its output. State (variables, imports, files in "
        "the working directory) is kept between calls of one session. The value of a final expression is "
        "shown, as in a REPL; print() anything else you need to see.",
        {"type": "object", "properties": {"code": {"type": "string", "description": "The Python code to run"}},
         "required": ["code"]},
    ),
    "bash": (
        "Run a bash command in a sandbox (no network, a private working directory kept for the session) and "
        "get its stdout, stderr and exit code.",
        {"type": "object", "properties": {"command": {"type": "string", "description": "The command to run"}},
         "required": ["command"]},
    ),
    "web_search": (
        "Search the web and get the top results (title, URL, snippet).",
        {"type": "object", "properties": {"query": {"type": "string", "description": "What to search for"}},
         "required": ["query"]},
    ),
}


def builtin_tool(name: BuiltinTool) -> pb.Tool:
    description, schema = _DEFINITIONS[name]
    return pb.Tool(name=name, description=description, parameters_json=orjson.dumps(schema).decode())
