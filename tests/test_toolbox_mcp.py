"""The toolbox's MCP side against real MCP servers built with the official SDK (``MCPServer``) on loopback:
ListMcpTools and RunTool(tool="mcp") over streamable HTTP and SSE, request headers reaching the server, a
raising tool, the allowlist's refusal, an unreachable server; web_search with the mcp backend; the allowlist
matcher itself (``fleetgate.core.mcp_allowlist.url_allowed``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import uvicorn

from fleetgate.core.local_processes import free_port
from fleetgate.core.mcp_allowlist import url_allowed
from fleetgate.v1 import toolbox_pb2 as pb
from mcp_test_servers import SECRET_HEADER, asgi_app
from test_toolbox_sandbox import ToolboxClient, ToolboxFactory, toolbox_factory  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)


@dataclass
class McpServers:
    base: str

    @property
    def http_url(self) -> str:
        return f"{self.base}/tools/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base}/sse-tools/sse"

    @property
    def search_url(self) -> str:
        return f"{self.base}/search/mcp"


@pytest.fixture()
async def mcp_servers() -> AsyncIterator[McpServers]:
    """The tool server over streamable HTTP and over SSE, and the search server, under one loopback port."""
    app = asgi_app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield McpServers(base=f"http://127.0.0.1:{port}")
    server.should_exit = True
    try:
        await asyncio.wait_for(asyncio.shield(serving), 3)
    except TimeoutError:  # a stream still open: uvicorn would wait for it
        server.force_exit = True
        await serving


@pytest.fixture()
async def toolbox(toolbox_factory: ToolboxFactory, mcp_servers: McpServers) -> ToolboxClient:
    return await toolbox_factory(
        mcp_allowed_urls=[mcp_servers.base + "/tools", mcp_servers.base + "/sse-tools", "http://127.0.0.1:1/"],
        mcp_timeout_seconds=5,
        web_search={"backend": "mcp", "mcp_url": mcp_servers.search_url, "max_results": 1},
    )


def server_of(url: str, transport: str = "", **headers: str) -> pb.McpServer:
    return pb.McpServer(label="test", url=url, headers=headers, transport=transport)


async def list_tools(toolbox: ToolboxClient, server: pb.McpServer) -> pb.ListMcpToolsResponse:
    request = pb.ListMcpToolsRequest(request_id="test", server=server, key_id="key-a")
    response: pb.ListMcpToolsResponse = await toolbox.stub.ListMcpTools(request, metadata=toolbox.metadata, timeout=20)
    return response


async def call(toolbox: ToolboxClient, server: pb.McpServer, tool: str, arguments: dict[str, object]) -> pb.ToolResult:
    return await toolbox.run("mcp", arguments, mcp_server=server, mcp_tool=tool, key_id="key-a")


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_lists_and_calls_tools(toolbox: ToolboxClient, mcp_servers: McpServers, transport: str) -> None:
    server = server_of(mcp_servers.http_url if transport == "streamable_http" else mcp_servers.sse_url, transport)
    listed = await list_tools(toolbox, server)
    assert listed.error == ""
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"add", "echo_secret", "explode"}
    assert tools["add"].description == "Adds two integers."
    schema = json.loads(tools["add"].input_schema_json)
    assert schema["properties"].keys() == {"a", "b"} and schema["properties"]["a"]["type"] == "integer"
    result = await call(toolbox, server, "add", {"a": 2, "b": 3})
    assert (result.output, result.is_error, result.outcome) == ("5", False, "ok")


async def test_headers_reach_the_server(toolbox: ToolboxClient, mcp_servers: McpServers) -> None:
    with_secret = server_of(mcp_servers.http_url, **{SECRET_HEADER: "open sesame"})
    assert (await call(toolbox, with_secret, "echo_secret", {})).output == "open sesame"
    assert (await call(toolbox, server_of(mcp_servers.http_url), "echo_secret", {})).output == "no secret"


async def test_a_failing_tool_is_an_error_result(toolbox: ToolboxClient, mcp_servers: McpServers) -> None:
    result = await call(toolbox, server_of(mcp_servers.http_url), "explode", {})
    assert result.is_error and result.outcome == "error"
    assert "kaboom" in result.output
    bad = await call(toolbox, server_of(mcp_servers.http_url), "add", {"a": "two"})
    assert bad.is_error


async def test_a_server_outside_the_allowlist_is_refused(toolbox: ToolboxClient, mcp_servers: McpServers) -> None:
    outside = server_of(mcp_servers.search_url)  # a real MCP server, but not allowed for the mcp tool
    result = await call(toolbox, outside, "search", {"query": "x"})
    assert result.is_error and result.outcome == "refused" and "not allowed" in result.output
    listed = await list_tools(toolbox, outside)
    assert not listed.tools and "not allowed" in listed.error


async def test_an_unreachable_or_non_mcp_server_sets_error(toolbox: ToolboxClient, mcp_servers: McpServers) -> None:
    for url in ("http://127.0.0.1:1/mcp", mcp_servers.base + "/tools/not-mcp"):
        listed = await list_tools(toolbox, server_of(url))
        assert not listed.tools and listed.error, url
    result = await call(toolbox, server_of("http://127.0.0.1:1/mcp"), "add", {"a": 1, "b": 2})
    assert result.is_error and result.outcome == "unavailable"


async def test_web_search_through_an_mcp_backend(toolbox: ToolboxClient) -> None:
    info = await toolbox.stub.ToolboxInfo(pb.ToolboxInfoRequest(), metadata=toolbox.metadata)
    assert list(info.tools) == ["python", "bash", "web_search"]
    result = await toolbox.run("web_search", {"query": "bubblewrap"})
    assert not result.is_error and result.outcome == "ok"
    assert json.loads(result.results_json) == [
        {"title": "About bubblewrap", "url": "https://example.test/1", "snippet": "hit 1"}
    ]
    assert result.output == "1. About bubblewrap\n   https://example.test/1\n   hit 1"
    assert (await toolbox.run("web_search", {"q": "x"})).outcome == "error"


async def test_web_search_is_refused_without_a_backend(toolbox_factory: ToolboxFactory) -> None:
    toolbox = await toolbox_factory()
    info = await toolbox.stub.ToolboxInfo(pb.ToolboxInfoRequest(), metadata=toolbox.metadata)
    assert "web_search" not in info.tools
    result = await toolbox.run("web_search", {"query": "x"})
    assert result.is_error and result.outcome == "refused"


@pytest.mark.parametrize(
    "url,allowed",
    [
        ("https://mcp.example.com/api", True),
        ("https://mcp.example.com:443/api/v1", True),
        ("https://MCP.example.com/api/", True),
        ("https://mcp.example.com/apix", False),
        ("http://mcp.example.com/api", False),
        ("https://mcp.example.com:8443/api", False),
        ("https://mcp.example.com.evil.test/api", False),
        ("https://mcp.example.com@evil.test/api", False),
        ("https://mcp.example.com/api/../admin", False),
        ("http://127.0.0.1:8000/anything", True),
        ("ftp://mcp.example.com/api", False),
        ("not a url", False),
    ],
)
def test_allowlist_matches_url_prefixes(url: str, allowed: bool) -> None:
    assert url_allowed(url, ["https://mcp.example.com/api", "http://127.0.0.1:8000/"]) is allowed
    assert not url_allowed(url, [])


