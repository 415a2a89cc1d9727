"""The router's view of the toolboxes: which are alive (the registry in Redis), and the calls to them.

``Toolboxes.run`` sends one tool call to the toolbox its session hashes to (``toolbox_registry.pick``; a call
without a session spreads by its request id) and returns the toolbox's ``ToolResult``. A toolbox that cannot
be reached, or none registered, is a ``ToolResult`` with ``is_error`` and outcome ``unavailable``: the model is
told the tool failed, the request goes on. The registry is read at most every ``REFRESH_SECONDS``; the channels
are a ``ChannelPool`` like the replicas' (the shared token ``replica.auth_token`` on every call, a channel to a
toolbox gone from the registry closed after a while).
"""

from __future__ import annotations

import logging
import time

import grpc
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetgate.core import toolbox_registry
from fleetgate.core.toolbox_registry import ToolboxRecord
from fleetgate.router import metrics
from fleetgate.router.channel_pool import toolbox_channels
from fleetgate.v1 import toolbox_pb2 as tpb

log = logging.getLogger("fleetgate.router.server_tools")

REFRESH_SECONDS = 1.0


class Toolboxes:
    def __init__(self, redis: aioredis.Redis, *, auth_token: str | None, call_timeout_seconds: float,
                 list_timeout_seconds: float) -> None:
        self._redis = redis
        self._channels = toolbox_channels(auth_token)
        self._call_timeout = call_timeout_seconds
        self._list_timeout = list_timeout_seconds
        self._records: list[ToolboxRecord] = []
        self._read_at = float("-inf")

    async def run(self, request: tpb.RunToolRequest) -> tpb.ToolResult:
        """The result of one call (a failed one says why; see the module docstring), counted and timed in the
        router's metrics (``fleetgate_server_tool_calls_total``, ``fleetgate_server_tool_seconds``)."""
        started = time.monotonic()
        result = await self._run(request)
        metrics.SERVER_TOOL_CALLS.labels(tool=request.tool, outcome=result.outcome or "ok").inc()
        metrics.SERVER_TOOL_SECONDS.labels(tool=request.tool).observe(time.monotonic() - started)
        return result

    async def _run(self, request: tpb.RunToolRequest) -> tpb.ToolResult:
        record = await self._pick(request.session_id or request.request_id, request.key_id)
        if record is None:
            return unavailable("no toolbox is running")
        try:
            reply: tpb.ToolResult = await self._channels.stub(record.address).RunTool(
                request, timeout=self._call_timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("toolbox %s failed a %s call: %s", record.toolbox_id, request.tool, exc.code().name)
            self._read_at = float("-inf")  # read the registry again before the next call
            return unavailable(f"the toolbox failed ({exc.code().name})")
        return reply

    async def list_mcp_tools(self, request: tpb.ListMcpToolsRequest) -> tpb.ListMcpToolsResponse:
        """The tools an MCP server lists, or a response with ``error`` set."""
        record = await self._pick(request.server.url, request.key_id)
        if record is None:
            return tpb.ListMcpToolsResponse(error="no toolbox is running")
        try:
            reply: tpb.ListMcpToolsResponse = await self._channels.stub(record.address).ListMcpTools(
                request, timeout=self._list_timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("toolbox %s failed to list an MCP server: %s", record.toolbox_id, exc.code().name)
            self._read_at = float("-inf")
            return tpb.ListMcpToolsResponse(error=f"the toolbox failed ({exc.code().name})")
        return reply

    async def _pick(self, session: str, key_id: str) -> ToolboxRecord | None:
        now = time.monotonic()
        if now - self._read_at >= REFRESH_SECONDS:
            try:
                self._records = await toolbox_registry.read_all(self._redis)
                self._read_at = now
                await self._channels.retain(record.address for record in self._records)
            except RedisError as exc:  # keep the last view: a Redis blip must not fail a tool call
                log.warning("cannot read the toolbox registry: %s", exc)
        return toolbox_registry.pick(self._records, f"{key_id}\0{session}")

    async def close(self) -> None:
        await self._channels.close()


def unavailable(why: str) -> tpb.ToolResult:
    return tpb.ToolResult(output=f"The tool could not run: {why}.", is_error=True, outcome="unavailable")
