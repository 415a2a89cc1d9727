"""The web_search tool over the configured backend (``tools.web_search``): searxng's JSON API or an MCP tool.

searxng: ``GET <searxng_url>/search?q=...&format=json``, its ``results[]`` mapped to ``{"title", "url",
"snippet"}``, the first ``max_results``. mcp: the tool ``mcp_tool`` of the server at ``mcp_url`` (streamable
HTTP) called with ``{"query": ...}``, its text content the output (and the results, when that text is a JSON
array of such objects). Both bounded by ``timeout_seconds``. Backend "none": the tool is not offered.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from fleetgate.core.config import WebSearchConfig
from fleetgate.toolbox import mcp_client
from fleetgate.toolbox.results import BadArguments, failed, string_argument
from fleetgate.v1 import toolbox_pb2 as pb

EXPECTS = '{"query": "<search terms>"}'


class SearchFailure(Exception):
    """The backend could not be asked or gave no usable answer."""


def _hit(item: Any) -> dict[str, str] | None:
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        return None
    snippet = item.get("snippet", item.get("content"))
    return {"title": str(item.get("title") or ""), "url": item["url"], "snippet": str(snippet or "")}


def hits_of(items: Any, limit: int) -> list[dict[str, str]]:
    """The usable {"title", "url", "snippet"} entries of a result list, at most ``limit``."""
    hits = [hit for item in items if (hit := _hit(item))] if isinstance(items, list) else []
    return hits[:limit]


def numbered(hits: list[dict[str, str]]) -> str:
    """The results as the model reads them: a numbered list of title, URL and snippet."""
    if not hits:
        return "No results."
    return "\n\n".join(
        f"{n}. {hit['title'] or hit['url']}\n   {hit['url']}" + (f"\n   {hit['snippet']}" if hit["snippet"] else "")
        for n, hit in enumerate(hits, 1)
    )


class WebSearch:
    def __init__(self, config: WebSearchConfig) -> None:
        self._config = config

    @property
    def offered(self) -> bool:
        return self._config.backend != "none"

    async def run(self, request: pb.RunToolRequest) -> pb.ToolResult:
        if not self.offered:
            return failed("web_search is not available on this toolbox (tools.web_search.backend is none)", "refused")
        try:
            query = string_argument(request.arguments_json, "query", EXPECTS)
        except BadArguments as exc:
            return failed(f"web_search: {exc}")
        try:
            if self._config.backend == "searxng":
                hits = await self._searxng(query)
                return pb.ToolResult(output=numbered(hits), outcome="ok", results_json=json.dumps(hits))
            return await self._mcp(query)
        except (SearchFailure, mcp_client.McpFailure) as exc:
            return failed(f"web_search failed: {exc}", "unavailable")

    async def _searxng(self, query: str) -> list[dict[str, str]]:
        url = f"{(self._config.searxng_url or '').rstrip('/')}/search"
        try:
            async with httpx.AsyncClient(timeout=self._config.timeout_seconds) as client:
                response = await client.get(url, params={"q": query, "format": "json"})
                response.raise_for_status()
                body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SearchFailure(f"searxng: {type(exc).__name__}: {exc}") from None
        return hits_of(body.get("results") if isinstance(body, dict) else None, self._config.max_results)

    async def _mcp(self, query: str) -> pb.ToolResult:
        config = self._config
        endpoint = mcp_client.McpEndpoint(
            url=config.mcp_url or "", headers={}, transport="streamable_http", timeout=config.timeout_seconds
        )
        result = await mcp_client.call_tool(endpoint, self._config.mcp_tool, {"query": query})
        if result.is_error:
            return failed(f"web_search failed: {result.text}")
        try:
            hits = hits_of(json.loads(result.text), self._config.max_results)
        except ValueError:
            hits = []
        return pb.ToolResult(
            output=numbered(hits) if hits else result.text, outcome="ok", results_json=json.dumps(hits)
        )
