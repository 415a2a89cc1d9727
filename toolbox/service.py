"""The toolbox's three calls, independent of gRPC: run a tool, list an MCP server's tools, say what it runs.

``run_tool`` never raises for a tool's failure: every outcome is a ToolResult (is_error and outcome set), so
the model sees why. The defence in depth lives here: an MCP URL outside ``tools.mcp_allowed_urls`` is refused
(outcome "refused") before any connection, whatever the router checked. Failures are logged with the tool,
request id and outcome, never with arguments or MCP headers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable

from fleetgate.core.config import ToolsConfig
from fleetgate.core.mcp_allowlist import url_allowed
from fleetgate.toolbox import mcp_client, sandbox
from fleetgate.toolbox.code_tools import CodeTools
from fleetgate.toolbox.results import BadArguments, arguments_object, failed
from fleetgate.toolbox.sessions import SessionStore, prepare_work_root
from fleetgate.toolbox.web_search import WebSearch
from fleetgate.v1 import toolbox_pb2 as pb

log = logging.getLogger(__name__)


def default_concurrent_runs(config: ToolsConfig) -> int:
    """Sandbox runs at once: two per core, never more than the sessions a toolbox keeps."""
    return max(1, min(config.sandbox.max_sessions, 2 * (os.cpu_count() or 1)))


class Toolbox:
    def __init__(self, config: ToolsConfig, toolbox_id: str, concurrent_runs: int | None = None) -> None:
        self.config = config
        self.toolbox_id = toolbox_id
        sandbox.check_host(config.sandbox)
        self.sessions = SessionStore(config.sandbox, prepare_work_root(config.sandbox, toolbox_id))
        self._code = CodeTools(config.sandbox, self.sessions, concurrent_runs or default_concurrent_runs(config))
        self._search = WebSearch(config.web_search)
        self._tools: dict[str, Callable[[pb.RunToolRequest], Awaitable[pb.ToolResult]]] = {
            "python": self._code.python,
            "bash": self._code.bash,
            "web_search": self._search.run,
            "mcp": self._mcp,
        }

    @property
    def tools(self) -> list[str]:
        """The built-in tools offered (the registry record and ToolboxInfo)."""
        return ["python", "bash", *(["web_search"] if self._search.offered else [])]

    def info(self) -> pb.ToolboxInfoResponse:
        return pb.ToolboxInfoResponse(toolbox_id=self.toolbox_id, tools=self.tools, sessions=len(self.sessions))

    async def run_tool(self, request: pb.RunToolRequest) -> pb.ToolResult:
        started = time.monotonic()
        handler = self._tools.get(request.tool)
        if handler is None:
            result = failed(f"unknown tool {request.tool!r} (this toolbox runs {', '.join(self._tools)})", "refused")
        else:
            try:
                result = await handler(request)
            except Exception as exc:  # a bug or the host (a spawn that failed): still a result, never a gRPC error
                log.exception("tool %s of request %s failed in the toolbox", request.tool, request.request_id)
                result = failed(f"the toolbox could not run the call ({type(exc).__name__})", "unavailable")
        result.seconds = time.monotonic() - started
        if result.is_error and result.outcome not in ("error", "timeout", "output_limit", "memory"):
            log.warning("tool %s of request %s: %s", request.tool, request.request_id, result.outcome)
        return result

    def _endpoint(self, server: pb.McpServer) -> mcp_client.McpEndpoint:
        """The server to talk to, or McpFailure when the allowlist does not name it."""
        if not url_allowed(server.url, self.config.mcp_allowed_urls):
            raise mcp_client.McpFailure(f"the MCP server {server.label or server.url!r} is not allowed on this cluster")
        return mcp_client.McpEndpoint.of(server, self.config.mcp_timeout_seconds)

    async def _mcp(self, request: pb.RunToolRequest) -> pb.ToolResult:
        try:
            endpoint = self._endpoint(request.mcp_server)
        except mcp_client.McpFailure as exc:
            return failed(str(exc), "refused")
        try:
            arguments = arguments_object(request.arguments_json, f"the arguments of MCP tool {request.mcp_tool!r}")
            result = await mcp_client.call_tool(endpoint, request.mcp_tool, arguments)
        except BadArguments as exc:
            return failed(f"mcp: {exc}")
        except mcp_client.McpFailure as exc:
            log.warning("mcp server %r, tool %r: %s", request.mcp_server.label, request.mcp_tool, exc)
            return failed(f"the MCP server {request.mcp_server.label!r} failed: {exc}", "unavailable")
        return pb.ToolResult(output=result.text, is_error=result.is_error, outcome="error" if result.is_error else "ok")

    async def list_mcp_tools(self, request: pb.ListMcpToolsRequest) -> pb.ListMcpToolsResponse:
        try:
            tools = await mcp_client.list_tools(self._endpoint(request.server))
        except mcp_client.McpFailure as exc:
            log.warning("mcp server %r: cannot list tools: %s", request.server.label, exc)
            return pb.ListMcpToolsResponse(error=str(exc))
        return pb.ListMcpToolsResponse(tools=tools)

    async def sweep(self) -> None:
        await self.sessions.sweep()

    async def close(self) -> None:
        await self.sessions.close()
