"""Remote MCP servers through the official ``mcp`` SDK client: list a server's tools, call one of them.

A connection per call (streamable HTTP, the default, or SSE), with the request's ``McpServer.headers`` on
every HTTP request and the whole exchange (connect, initialize, the request) bounded by
``tools.mcp_timeout_seconds``. Failures are ``McpFailure`` with a message fit for the model and the logs:
the exception's type and text, never the headers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, PaginatedRequestParams, TextContent

from fleetgate.v1 import toolbox_pb2 as pb

TRANSPORTS = ("streamable_http", "sse")
T = TypeVar("T")


class McpFailure(Exception):
    """The server could not be reached, is no MCP server, or failed the request."""


@dataclass(frozen=True)
class McpEndpoint:
    url: str
    headers: dict[str, str]
    transport: str
    timeout: float

    @classmethod
    def of(cls, server: pb.McpServer, timeout: float) -> McpEndpoint:
        transport = server.transport or "streamable_http"
        if transport not in TRANSPORTS:
            raise McpFailure(f"unknown MCP transport {transport!r} (expected one of {', '.join(TRANSPORTS)})")
        return cls(url=server.url, headers=dict(server.headers), transport=transport, timeout=timeout)


def _describe(exc: BaseException) -> str:
    """The innermost cause of a (possibly grouped) failure, as "Type: text"."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@asynccontextmanager
async def _streams(endpoint: McpEndpoint) -> AsyncIterator[tuple[Any, Any]]:
    if endpoint.transport == "sse":
        async with sse_client(
            endpoint.url, headers=endpoint.headers, timeout=endpoint.timeout, sse_read_timeout=endpoint.timeout
        ) as streams:
            yield streams
        return
    async with (
        httpx2.AsyncClient(headers=endpoint.headers, timeout=httpx2.Timeout(endpoint.timeout)) as http,
        streamable_http_client(endpoint.url, http_client=http) as streams,
    ):
        yield streams


@asynccontextmanager
async def _session(endpoint: McpEndpoint) -> AsyncIterator[ClientSession]:
    async with _streams(endpoint) as (read, write), ClientSession(
        read, write, read_timeout_seconds=endpoint.timeout
    ) as session:
        await session.initialize()
        yield session


async def list_tools(endpoint: McpEndpoint) -> list[pb.McpTool]:
    """The server's tools (every page of tools/list)."""

    async def listing() -> list[pb.McpTool]:
        tools: list[pb.McpTool] = []
        async with _session(endpoint) as session:
            cursor: str | None = None
            while True:
                params = None if cursor is None else PaginatedRequestParams(cursor=cursor)
                page = await session.list_tools(params=params)
                tools += [_tool(tool) for tool in page.tools]
                cursor = page.next_cursor
                if not cursor:
                    return tools

    return await _bounded(endpoint, listing())


def _tool(tool: Any) -> pb.McpTool:
    annotations = tool.annotations.model_dump(mode="json", exclude_none=True) if tool.annotations else None
    return pb.McpTool(
        name=tool.name,
        description=tool.description or "",
        input_schema_json=json.dumps(tool.input_schema),
        annotations_json=json.dumps(annotations) if annotations else "",
    )


@dataclass
class McpCallResult:
    text: str
    is_error: bool


async def call_tool(endpoint: McpEndpoint, name: str, arguments: dict[str, Any]) -> McpCallResult:
    """Call tool ``name``: its text content joined, and its isError."""

    async def call() -> McpCallResult:
        async with _session(endpoint) as session:
            result = await session.call_tool(name, arguments)
        return McpCallResult(text=content_text(result), is_error=bool(result.is_error))

    return await _bounded(endpoint, call())


def content_text(result: CallToolResult) -> str:
    """The text parts of a tool result joined by newlines (other parts named by type); the structured
    content as JSON when there is no text."""
    parts = [item.text if isinstance(item, TextContent) else f"[{item.type} content]" for item in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)


async def _bounded(endpoint: McpEndpoint, work: Coroutine[Any, Any, T]) -> T:
    try:
        async with asyncio.timeout(endpoint.timeout):
            return await work
    except TimeoutError:
        raise McpFailure(f"the MCP server did not answer within {endpoint.timeout:g} s") from None
    except Exception as exc:  # the SDK's and httpx2's failures, often grouped by anyio
        raise McpFailure(_describe(exc)) from None
