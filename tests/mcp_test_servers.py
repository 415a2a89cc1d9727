"""MCP servers for tests, built with the official SDK (``MCPServer``): a tool server and a search server.

``tools_server()`` offers ``add(a, b)``, ``echo_secret`` (the value of the request's ``x-test-secret`` header)
and ``explode`` (raises a ToolError); ``search_server()`` offers ``search(query)`` returning two hits as JSON.
``asgi_app()`` mounts the tool server over streamable HTTP at ``/tools/mcp`` and over SSE at ``/sse-tools/sse``,
and the search server at ``/search/mcp``, under one port. Run as a script (``python tests/mcp_test_servers.py
PORT``) it serves them on 127.0.0.1 until killed, for tests that drive the router as a subprocess.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

SECRET_HEADER = "x-test-secret"


def tools_server() -> MCPServer:
    server = MCPServer("fleetgate-test-tools")

    @server.tool(description="Adds two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @server.tool(description="Says which secret the request carried.")
    def echo_secret(ctx: Context) -> str:
        return (ctx.headers or {}).get(SECRET_HEADER, "no secret")

    @server.tool(description="Always fails.")
    def explode() -> str:
        raise ToolError("kaboom")  # the message reaches the client (an unexpected exception's does not)

    return server


def search_server() -> MCPServer:
    server = MCPServer("fleetgate-test-search")

    @server.tool(description="Searches the test web.")
    def search(query: str) -> str:
        hits = [{"title": f"About {query}", "url": f"https://example.test/{n}", "snippet": f"hit {n}"} for n in (1, 2)]
        return json.dumps(hits)

    return server


def asgi_app() -> Any:
    """The three servers under one ASGI app (paths in the module docstring)."""
    tools, search = tools_server(), search_server()
    apps = {"/tools": tools.streamable_http_app(), "/sse-tools": tools_server().sse_app(),
            "/search": search.streamable_http_app()}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            return await lifespan(scope, receive, send)
        for prefix, sub in apps.items():
            if scope["path"].startswith(prefix + "/"):
                inner = dict(scope, path=scope["path"][len(prefix):], root_path=scope.get("root_path", "") + prefix)
                return await sub(inner, receive, send)
        raise RuntimeError(f"no test MCP server at {scope['path']}")

    async def lifespan(scope, receive, send):  # type: ignore[no-untyped-def]
        # The streamable HTTP apps' session managers run for the server's life.
        async with tools.session_manager.run(), search.session_manager.run():
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

    return app


if __name__ == "__main__":
    uvicorn.run(asgi_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="on")
