"""web_search with the searxng backend, against a loopback HTTP server speaking searxng's JSON search API
(``GET /search?q=...&format=json`` → ``{"results": [{"title", "url", "content"}, ...]}``): the mapping to
``{"title", "url", "snippet"}``, ``max_results``, the numbered list the model reads, and a backend that is down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fleetgate.core.local_processes import free_port
from test_toolbox_sandbox import ToolboxFactory, toolbox_factory  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)

asked: list[dict[str, str]] = []


async def search(request: Request) -> JSONResponse:
    asked.append(dict(request.query_params))
    query = request.query_params["q"]
    results = [
        {"title": f"{query} {n}", "url": f"https://s.test/{n}", "content": f"about {query} {n}"} for n in (1, 2, 3)
    ]
    return JSONResponse({"query": query, "results": [*results, {"title": "no url"}]})


@pytest.fixture()
async def searxng() -> AsyncIterator[str]:
    port = free_port()
    app = Starlette(routes=[Route("/search", search)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    await serving


async def test_searxng_results_are_mapped_and_limited(toolbox_factory: ToolboxFactory, searxng: str) -> None:
    toolbox = await toolbox_factory(web_search={"backend": "searxng", "searxng_url": searxng, "max_results": 2})
    result = await toolbox.run("web_search", {"query": "bubble wrap"})
    assert not result.is_error and result.outcome == "ok"
    assert asked[-1] == {"q": "bubble wrap", "format": "json"}
    assert json.loads(result.results_json) == [
        {"title": "bubble wrap 1", "url": "https://s.test/1", "snippet": "about bubble wrap 1"},
        {"title": "bubble wrap 2", "url": "https://s.test/2", "snippet": "about bubble wrap 2"},
    ]
    assert result.output == (
        "1. bubble wrap 1\n   https://s.test/1\n   about bubble wrap 1\n\n"
        "2. bubble wrap 2\n   https://s.test/2\n   about bubble wrap 2"
    )


async def test_a_searxng_that_is_down_is_unavailable(toolbox_factory: ToolboxFactory) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    toolbox = await toolbox_factory(web_search={"backend": "searxng", "searxng_url": down, "timeout_seconds": 2})
    result = await toolbox.run("web_search", {"query": "x"})
    assert result.is_error and result.outcome == "unavailable"
    assert "searxng" in result.output
