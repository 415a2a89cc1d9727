"""The router's view of the toolboxes: which are alive (the registry in Redis), and the calls to them.

``Toolboxes.run`` sends one tool call to the toolbox its session hashes to (``toolbox_registry.pick``; a call
without a session spreads by its request id) and returns the toolbox's ``ToolResult``. A toolbox that cannot
be reached, or none registered, is a ``ToolResult`` with ``is_error`` and outcome ``unavailable``: the model is
told the tool failed, the request goes on. The registry is read at most every ``REFRESH_SECONDS``; channels
carry the shared token (``replica.auth_token``) like the replicas' do.
"""

from __future__ import annotations

import logging
import time

import grpc
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fleetgate.core import grpc_options, toolbox_registry
from fleetgate.core.replica_auth import call_metadata
from fleetgate.core.toolbox_registry import ToolboxRecord
from fleetgate.router import metrics
from fleetgate.v1 import toolbox_pb2 as tpb
from fleetgate.v1 import toolbox_pb2_grpc

log = logging.getLogger("fleetgate.router.server_tools")

REFRESH_SECONDS = 1.0


class Toolboxes:
    def __init__(self, redis: aioredis.Redis, *, auth_token: str | None, call_timeout_seconds: float,
                 list_timeout_seconds: float) -> None:
        self._redis = redis
        self._metadata = call_metadata(auth_token)
        self._call_timeout = call_timeout_seconds
        self._list_timeout = list_timeout_seconds
        self._records: list[ToolboxRecord] = []
        self._read_at = float("-inf")
        self._stubs: dict[str, toolbox_pb2_grpc.ToolboxStub] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}

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
            reply: tpb.ToolResult = await self._stub(record).RunTool(
                request, timeout=self._call_timeout, metadata=self._metadata)
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
            reply: tpb.ListMcpToolsResponse = await self._stub(record).ListMcpTools(
                request, timeout=self._list_timeout, metadata=self._metadata)
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
            except RedisError as exc:  # keep the last view: a Redis blip must not fail a tool call
                log.warning("cannot read the toolbox registry: %s", exc)
        return toolbox_registry.pick(self._records, f"{key_id}\0{session}")

    def _stub(self, record: ToolboxRecord) -> toolbox_pb2_grpc.ToolboxStub:
        stub = self._stubs.get(record.address)
        if stub is None:
            channel = grpc.aio.insecure_channel(record.address, options=grpc_options.CHANNEL_OPTIONS)
            self._channels[record.address] = channel
            stub = self._stubs[record.address] = toolbox_pb2_grpc.ToolboxStub(channel)
        return stub

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()


def unavailable(why: str) -> tpb.ToolResult:
    return tpb.ToolResult(output=f"The tool could not run: {why}.", is_error=True, outcome="unavailable")
