"""The replica's subscription to its vLLM engine's KV cache events (vLLM's ZMQ publisher, ``kv_events_config``).

vLLM's engine core publishes each scheduler step's events as one msgpack
``KVEventBatch`` on a ZMQ PUB socket, frames ``(topic, seq, payload)`` with a
sequence number counting from 0, and keeps the last ``buffer_steps`` batches
for replay on a ROUTER socket. ``private_endpoints`` puts both on ``ipc://``
paths in a fresh temporary directory only this user can enter (one per
replica), so nothing on the network reaches them.

``KvEventSubscriber`` runs in the replica's event loop (pyzmq's asyncio
sockets) and hands every batch's events, in sequence order, to ``on_events``.
It never slows the engine: a PUB socket drops what a subscriber does not take
up to its high-water mark instead of waiting. A gap in the sequence numbers
(dropped at the high-water mark, or sent before the subscription was up) is
filled from the replay buffer; what the buffer no longer holds is lost, and
``on_lost`` is called (the mirror forgets what it can no longer vouch for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio
from vllm.config.kv_events import KVEventsConfig
from vllm.distributed.kv_events import KVEventBatch

log = logging.getLogger(__name__)

# Batches vLLM keeps for replay, and queued messages before either socket drops (vLLM's defaults).
BUFFER_STEPS = 10_000
HIGH_WATER_MARK = 100_000
# How long a replay may take before what it did not bring counts as lost.
REPLAY_TIMEOUT_SECONDS = 2.0
_END_OF_REPLAY = (-1).to_bytes(8, "big", signed=True)


@dataclass(frozen=True)
class PrivateEndpoints:
    """The ``ipc://`` endpoints of one engine's event publisher, in a directory removed with ``remove``."""

    directory: Path
    events: str
    replay: str

    def kv_events_config(self) -> KVEventsConfig:
        """vLLM's ``kv_events_config`` publishing on these endpoints."""
        return KVEventsConfig(
            enable_kv_cache_events=True,
            publisher="zmq",
            endpoint=self.events,
            replay_endpoint=self.replay,
            buffer_steps=BUFFER_STEPS,
            hwm=HIGH_WATER_MARK,
        )

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def private_endpoints() -> PrivateEndpoints:
    """Fresh endpoints in a new directory of mode 0700 (``tempfile.mkdtemp``)."""
    directory = Path(tempfile.mkdtemp(prefix="fleetgate-kv-events-"))
    return PrivateEndpoints(directory, f"ipc://{directory}/events", f"ipc://{directory}/replay")


class KvEventSubscriber:
    """Receives one engine's event batches and hands their events on in order; ``start`` then ``stop``."""

    def __init__(
        self,
        endpoints: PrivateEndpoints,
        on_events: Callable[[list[object]], None],
        on_lost: Callable[[], None],
    ) -> None:
        self._endpoints = endpoints
        self._on_events = on_events
        self._on_lost = on_lost
        self._context = zmq.asyncio.Context()
        self._decoder = msgspec.msgpack.Decoder(type=KVEventBatch)
        self._next_seq = 0
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches handed on
        self.lost_batches = 0

    def start(self) -> None:
        subscriber = self._context.socket(zmq.SUB)
        subscriber.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
        subscriber.setsockopt(zmq.SUBSCRIBE, b"")
        subscriber.connect(self._endpoints.events)
        self._task = asyncio.create_task(self._receive(subscriber), name="vllm-kv-events")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._context.destroy(linger=0)

    async def _receive(self, subscriber: zmq.asyncio.Socket) -> None:
        try:
            while True:
                _topic, seq_bytes, payload = await subscriber.recv_multipart()
                seq = int.from_bytes(seq_bytes, "big")
                if seq > self._next_seq:
                    await self._fill_gap(seq)
                self._take(seq, payload)
        except asyncio.CancelledError:
            raise
        except Exception:  # the engine keeps serving; its cache mirror stops following
            log.exception("KV event subscription failed; the replica's KV events stop here")
        finally:
            subscriber.close(linger=0)

    def _take(self, seq: int, payload: bytes) -> None:
        """Hand on batch ``seq`` unless it was handed on already (a replayed batch can also arrive subscribed)."""
        if seq < self._next_seq:
            return
        if seq > self._next_seq:
            self._lose(seq)
        self._next_seq = seq + 1
        try:
            batch = self._decoder.decode(payload)
        except msgspec.DecodeError:
            log.exception("KV event batch %d cannot be decoded", seq)
            self.lost_batches += 1
            self._on_lost()
            return
        self.batches += 1
        self._on_events(batch.events)

    def _lose(self, seq: int) -> None:
        """Batches ``next_seq`` .. ``seq - 1`` will never arrive."""
        self.lost_batches += seq - self._next_seq
        log.warning("KV event batches %d..%d are lost: the cache mirror starts over", self._next_seq, seq - 1)
        self._next_seq = seq
        self._on_lost()

    async def _fill_gap(self, seq: int) -> None:
        """Take the batches before ``seq`` from the replay buffer (what it no longer holds is lost in ``_take``)."""
        log.warning("KV event batches %d..%d missed; asking for a replay", self._next_seq, seq - 1)
        replay = self._context.socket(zmq.DEALER)
        try:
            replay.connect(self._endpoints.replay)
            await replay.send_multipart((b"", self._next_seq.to_bytes(8, "big")))
            async with asyncio.timeout(REPLAY_TIMEOUT_SECONDS):
                while True:
                    _empty, _topic, seq_bytes, payload = await replay.recv_multipart()
                    if seq_bytes == _END_OF_REPLAY or (replayed := int.from_bytes(seq_bytes, "big")) >= seq:
                        break
                    self._take(replayed, payload)
        except TimeoutError:
            log.warning("KV event replay timed out")
        finally:
            replay.close(linger=0)
