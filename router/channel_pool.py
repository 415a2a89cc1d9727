"""gRPC channels to the router's backends: one ``grpc.aio`` channel per address, made on first use and reused.

One pool serves the replicas (``replica_channels``) and one the toolboxes (``toolbox_channels``). A channel whose
address has been missing from its registry for ``ABSENT_CLOSE_SECONDS`` is closed (``retain``), with a grace
period for calls still open on it; a brief gap (a Redis restart, a late heartbeat) closes nothing. Channels take
the options replicas and toolboxes agree with (``fleetgate.core.grpc_options``): the raised message size limit
(base64 images in a request) and keepalive pings, so a backend whose host vanished fails its open calls within
seconds instead of leaving them waiting forever. With the shared token (``replica.auth_token``) every call
carries it in its metadata: a stub's methods are bound to it once, when the channel is made, so a call costs
nothing more. A call with metadata of its own (a traced request's ``traceparent``) passes
``call_metadata(extra)``: the token and its own.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Generic, TypeVar

import grpc

from fleetgate.core import grpc_options
from fleetgate.core.replica_auth import call_metadata
from fleetgate.v1 import replica_pb2, replica_pb2_grpc, toolbox_pb2, toolbox_pb2_grpc

ABSENT_CLOSE_SECONDS = 60.0
CLOSE_GRACE_SECONDS = 60.0
CHANNEL_OPTIONS = [
    # Fail fast on a dead address instead of backing off for long between attempts.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    *grpc_options.CHANNEL_OPTIONS,
]

StubT = TypeVar("StubT")


def service_methods(module: ModuleType, service: str) -> tuple[str, ...]:
    """The method names of ``service`` as the generated ``*_pb2`` module describes it."""
    return tuple(method.name for method in module.DESCRIPTOR.services_by_name[service].methods)


class ChannelPool(Generic[StubT]):
    """Channels and stubs by address; every stub's methods send the token."""

    def __init__(self, make_stub: Callable[[grpc.aio.Channel], StubT], methods: tuple[str, ...],
                 auth_token: str | None = None) -> None:
        self._make_stub = make_stub
        self._methods = methods
        self._metadata = call_metadata(auth_token)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, StubT] = {}
        self._closing: set[asyncio.Task[None]] = set()
        # address -> monotonic time it was first seen missing from the registry
        self._absent_since: dict[str, float] = {}

    def call_metadata(self, extra: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        """The metadata of a call that sends ``extra`` too (it replaces what the stub's methods are bound to)."""
        return self._metadata + extra

    def stub(self, address: str) -> StubT:
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = self._authenticated(channel)
        return stub

    def _authenticated(self, channel: grpc.aio.Channel) -> StubT:
        """A stub whose every method sends the token (callers pass no metadata of their own)."""
        stub = self._make_stub(channel)
        if self._metadata:
            for name in self._methods:
                setattr(stub, name, functools.partial(getattr(stub, name), metadata=self._metadata))
        return stub

    async def retain(self, addresses: Iterable[str]) -> None:
        """Note which addresses the registry lists; close, in the background, channels missing for long."""
        keep = set(addresses)
        now = time.monotonic()
        for address in keep:
            self._absent_since.pop(address, None)
        for address in [a for a in self._channels if a not in keep]:
            if now - self._absent_since.setdefault(address, now) < ABSENT_CLOSE_SECONDS:
                continue
            del self._absent_since[address]
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


ReplicaChannels = ChannelPool[replica_pb2_grpc.ReplicaStub]
ToolboxChannels = ChannelPool[toolbox_pb2_grpc.ToolboxStub]
_REPLICA_METHODS = service_methods(replica_pb2, "Replica")
_TOOLBOX_METHODS = service_methods(toolbox_pb2, "Toolbox")


def replica_channels(auth_token: str | None = None) -> ReplicaChannels:
    return ChannelPool(replica_pb2_grpc.ReplicaStub, _REPLICA_METHODS, auth_token)


def toolbox_channels(auth_token: str | None = None) -> ToolboxChannels:
    return ChannelPool(toolbox_pb2_grpc.ToolboxStub, _TOOLBOX_METHODS, auth_token)
