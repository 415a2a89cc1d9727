"""router/channel_pool.py: one channel per address for replicas and toolboxes alike, the token bound to every
method of their stubs, and a channel whose address left the registry closed only once it stayed away."""

from __future__ import annotations

import functools

import pytest

from fleetgate.core.replica_auth import REPLICA_TOKEN_METADATA
from fleetgate.router import channel_pool
from fleetgate.router.channel_pool import replica_channels, toolbox_channels
from fleetgate.v1 import replica_pb2_grpc, toolbox_pb2_grpc


async def test_each_pool_binds_the_token_to_every_method_of_its_service() -> None:
    replicas, toolboxes = replica_channels("s3cret"), toolbox_channels("s3cret")
    try:
        replica = replicas.stub("127.0.0.1:1")
        toolbox = toolboxes.stub("127.0.0.1:1")
        assert isinstance(toolbox, toolbox_pb2_grpc.ToolboxStub) and isinstance(replica, replica_pb2_grpc.ReplicaStub)
        for stub, methods in ((replica, ("Generate", "Health")), (toolbox, ("RunTool", "ListMcpTools", "ToolboxInfo"))):
            for name in methods:
                method = getattr(stub, name)
                assert isinstance(method, functools.partial), name
                assert method.keywords["metadata"] == ((REPLICA_TOKEN_METADATA, "s3cret"),), name
        assert replicas.stub("127.0.0.1:1") is replica  # reused, not made again
        assert not isinstance(replica_channels(None).stub("127.0.0.1:1").Generate, functools.partial)
    finally:
        await replicas.close()
        await toolboxes.close()


async def test_a_channel_is_closed_only_after_its_address_stayed_out_of_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(channel_pool.time, "monotonic", lambda: now[0])
    pool = toolbox_channels(None)
    try:
        first = pool.stub("127.0.0.1:1")
        await pool.retain([])  # gone from the registry for a moment (a late heartbeat): kept
        now[0] += channel_pool.ABSENT_CLOSE_SECONDS / 2
        await pool.retain(["127.0.0.1:1"])  # back: the clock starts over
        now[0] += channel_pool.ABSENT_CLOSE_SECONDS
        await pool.retain([])
        assert pool.stub("127.0.0.1:1") is first
        now[0] += channel_pool.ABSENT_CLOSE_SECONDS
        await pool.retain([])  # away for long: closed, a new one next time
        assert pool.stub("127.0.0.1:1") is not first
    finally:
        await pool.close()
