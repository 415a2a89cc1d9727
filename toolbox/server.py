"""A toolbox process: the gRPC ``Toolbox`` service over ``service.Toolbox``, its registry heartbeat, its stop.

``serve`` binds ``host:port``, serves behind the shared-token interceptor when ``replica.auth_token`` is set
(a call without ``x-fleetgate-replica-token`` is UNAUTHENTICATED), publishes the toolbox in Redis every
``tools.heartbeat_seconds`` and, on stop, withdraws it, stops taking calls and kills its sandboxes.
``run_toolbox`` is ``fleetgate toolbox``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import uuid
from dataclasses import dataclass
from typing import Any

import grpc

from fleetgate.core import grpc_options
from fleetgate.core.config import FleetgateConfig, load_config
from fleetgate.core.grpc_token import TokenInterceptor
from fleetgate.core.registered import Heartbeat
from fleetgate.core.toolbox_registry import ToolboxRecord
from fleetgate.toolbox.sandbox import SandboxUnavailable
from fleetgate.toolbox.service import Toolbox
from fleetgate.v1 import toolbox_pb2 as pb
from fleetgate.v1 import toolbox_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

REFUSAL_MESSAGE = "this toolbox serves only its routers: the call carries no valid replica token"
STOP_GRACE_SECONDS = 2.0


class ToolboxServicer(pb_grpc.ToolboxServicer):
    def __init__(self, toolbox: Toolbox) -> None:
        self._toolbox = toolbox

    async def RunTool(self, request: pb.RunToolRequest, context: Any) -> pb.ToolResult:  # noqa: N802
        return await self._toolbox.run_tool(request)

    async def ListMcpTools(self, request: pb.ListMcpToolsRequest, context: Any) -> pb.ListMcpToolsResponse:  # noqa: N802
        return await self._toolbox.list_mcp_tools(request)

    async def ToolboxInfo(self, request: pb.ToolboxInfoRequest, context: Any) -> pb.ToolboxInfoResponse:  # noqa: N802
        return self._toolbox.info()


@dataclass
class RunningToolbox:
    toolbox: Toolbox
    server: grpc.aio.Server
    heartbeat: Heartbeat[ToolboxRecord]
    address: str

    async def stop(self) -> None:
        await self.heartbeat.withdraw()
        await self.server.stop(STOP_GRACE_SECONDS)
        await self.toolbox.close()


def new_toolbox_id() -> str:
    return f"toolbox-{uuid.uuid4().hex[:8]}"


async def start_toolbox(config: FleetgateConfig, *, host: str, port: int, toolbox_id: str) -> RunningToolbox:
    """Serve a toolbox on ``host:port`` (0: any free port) and register it."""
    toolbox = Toolbox(config.tools, toolbox_id)
    token = config.replica.auth_token
    server = grpc.aio.server(
        interceptors=[TokenInterceptor(token, REFUSAL_MESSAGE)] if token is not None else None,
        options=[("grpc.so_reuseport", 0), *grpc_options.SERVER_OPTIONS],
    )
    pb_grpc.add_ToolboxServicer_to_server(ToolboxServicer(toolbox), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    address = f"{host}:{bound}"
    record = ToolboxRecord(toolbox_id=toolbox_id, address=address, tools=toolbox.tools)

    async def sweep_and_count() -> None:
        await toolbox.sweep()
        record.sessions = len(toolbox.sessions)

    heartbeat = Heartbeat(
        config.redis_url,
        record,
        interval=config.tools.heartbeat_seconds,
        ttl=config.tools.registry_ttl_seconds,
        refresh=sweep_and_count,
    )
    await heartbeat.start()
    log.info("toolbox %s serving on %s (tools: %s)", toolbox_id, address, ", ".join(toolbox.tools))
    return RunningToolbox(toolbox=toolbox, server=server, heartbeat=heartbeat, address=address)


async def serve_until_signalled(config: FleetgateConfig, *, host: str, port: int, toolbox_id: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = await start_toolbox(config, host=host, port=port, toolbox_id=toolbox_id)
    try:
        await stop.wait()
    finally:
        await running.stop()


def run_toolbox(args: argparse.Namespace) -> int:
    """``fleetgate toolbox``: one toolbox process until SIGTERM / SIGINT."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    port = args.port if args.port is not None else config.tools.base_port
    toolbox_id = args.toolbox_id or new_toolbox_id()
    try:
        asyncio.run(serve_until_signalled(config, host=config.tools.host, port=port, toolbox_id=toolbox_id))
    except SandboxUnavailable as exc:
        log.error("toolbox %s cannot start: %s", toolbox_id, exc)
        return 2
    return 0
