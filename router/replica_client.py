"""gRPC channels to replicas: one ``grpc.aio`` channel per replica address, created on first use and reused.

Channels whose address left the registry are closed (``retain``). Messages may be
large (base64 images in a request), so the size limits are raised to match
the replicas' receive limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc

from fleetgate.v1 import replica_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CLOSE_GRACE_SECONDS = 30.0
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Fail fast on a dead address instead of backing off for long between attempts.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


class ChannelPool:
    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, replica_pb2_grpc.ReplicaStub] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def stub(self, address: str) -> replica_pb2_grpc.ReplicaStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = replica_pb2_grpc.ReplicaStub(channel)
        return stub

    async def retain(self, addresses: Iterable[str]) -> None:
        """Close, in the background, the channels to addresses not in ``addresses``."""
        keep = set(addresses)
        for address in [a for a in self._channels if a not in keep]:
            del self._stubs[address]
            # Calls still open on the channel get a grace period to end.
            task = asyncio.create_task(self._channels.pop(address).close(grace=CLOSE_GRACE_SECONDS))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        channels = list(self._channels.values())
        self._channels.clear()
        self._stubs.clear()
        await asyncio.gather(*(c.close() for c in channels), *self._closing, return_exceptions=True)
