"""The vLLM replica's KV cache events: vLLM's events in our token-block chain, the sink, CachedPrefix, usage.

Without an engine: the mirror's translation of vLLM's own event classes
(chains, unknown parents, extra keys, duplicate copies, removal, reset) and the
subscriber against vLLM's real ZMQ publisher on private ``ipc://`` endpoints
(order, a late subscriber's gap filled from the replay buffer, a lost gap).

With one in-process vLLM CPU engine (the bundled SmolLM2-135M, this module's
only engine) and a recording sink: a conversation's second turn reads the
first's prompt from the cache and the first reports what it wrote, the sink
sees the prompt and BlockStored in our chain, CachedPrefix (over real gRPC)
answers what the next request then reports, ``reset_prefix_cache`` clears
(the sink hears it at once, and again when vLLM publishes it with its next step),
and in a small KV cache new prompts evict the oldest one's blocks (BlockRemoved).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import grpc
import pytest
from vllm.distributed import kv_events as vllm_events

from fleetgate.core.config import load_config
from fleetgate.replicas.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvCacheEvent
from fleetgate.replicas.token_blocks import block_hashes
from fleetgate.replicas.vllm_engine.kv_block_mirror import KvBlockMirror
from fleetgate.replicas.vllm_engine.kv_event_subscriber import KvEventSubscriber, private_endpoints
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc

BLOCK = 4


class RecordingSink:
    """A ``KvEventSink`` that keeps everything it is handed."""

    def __init__(self) -> None:
        self.events: list[KvCacheEvent] = []
        self.prompts: list[tuple[pb.PrefixChain, list[int], int, int]] = []

    def publish(self, event: KvCacheEvent) -> None:
        self.events.append(event)

    def prompt(self, prefix: pb.PrefixChain, block_hashes: Sequence[int], prompt_tokens: int, block_size: int) -> None:
        self.prompts.append((prefix, list(block_hashes), prompt_tokens, block_size))

    def stored(self) -> list[int]:
        return [h for event in self.events if isinstance(event, BlockStored) for h in event.block_hashes]


def stored(hashes: list[bytes], tokens: list[int], parent: bytes | None = None, **fields) -> vllm_events.BlockStored:
    return vllm_events.BlockStored(
        block_hashes=hashes, parent_block_hash=parent, token_ids=tokens, block_size=BLOCK,
        lora_id=None, medium="GPU", lora_name=None, **fields,
    )


def removed(hashes: list[bytes]) -> vllm_events.BlockRemoved:
    return vllm_events.BlockRemoved(block_hashes=hashes, medium="GPU")


TOKENS = list(range(100, 112))  # three blocks
OURS = block_hashes(TOKENS, BLOCK)


# -- the mirror ------------------------------------------------------------------------------


def test_stored_blocks_become_our_chain_across_events():
    mirror = KvBlockMirror(BLOCK)
    first = mirror.apply(stored([b"a", b"b"], TOKENS[:8]))
    second = mirror.apply(stored([b"c"], TOKENS[8:], parent=b"b"))
    assert first == BlockStored(tuple(OURS[:2]), None, 8, BLOCK)
    assert second == BlockStored((OURS[2],), OURS[1], 4, BLOCK)
    assert mirror.cached_blocks(OURS) == 3
    assert mirror.cached_blocks(block_hashes([7, *TOKENS[1:]], BLOCK)) == 0


def test_blocks_that_cannot_be_placed_in_our_chain_are_left_out():
    mirror = KvBlockMirror(BLOCK)
    assert mirror.apply(stored([b"c"], TOKENS[8:], parent=b"unknown")) is None
    # An image's (extra keys) block breaks the chain there; the blocks after it are left out too.
    partial = mirror.apply(stored([b"a", b"b", b"c"], TOKENS, extra_keys=[None, ("mm", "img", 0), None]))
    assert partial == BlockStored((OURS[0],), None, 4, BLOCK)
    assert mirror.apply(stored([b"d"], TOKENS[:4], parent=b"b")) is None
    # Another block size (a partial block) and another KV cache group.
    assert mirror.apply(vllm_events.BlockStored(
        block_hashes=[b"p"], parent_block_hash=None, token_ids=TOKENS[:2], block_size=2,
        lora_id=None, medium="GPU", lora_name=None)) is None
    assert mirror.apply(stored([b"g"], TOKENS[:4], group_idx=1)) is None
    assert mirror.cached_blocks(OURS) == 1
    assert mirror.skipped_blocks == 1 + 2 + 1 + 1 + 1


def test_a_block_is_removed_with_its_last_copy():
    mirror = KvBlockMirror(BLOCK)
    mirror.apply(stored([b"a", b"b"], TOKENS[:8]))
    mirror.apply(stored([b"a"], TOKENS[:4]))  # a second copy of block 0 (computed twice)
    assert mirror.apply(removed([b"a", b"b"])) == BlockRemoved((OURS[1],))
    assert mirror.cached_blocks(OURS) == 1
    assert mirror.apply(removed([b"a"])) == BlockRemoved((OURS[0],))
    assert mirror.apply(removed([b"a", b"never-stored"])) is None
    assert len(mirror) == 0


def test_all_blocks_cleared_forgets_everything():
    mirror = KvBlockMirror(BLOCK)
    mirror.apply(stored([b"a", b"b", b"c"], TOKENS))
    assert mirror.apply(vllm_events.AllBlocksCleared()) == AllBlocksCleared()
    assert mirror.cached_blocks(OURS) == 0
    # A child of a forgotten block cannot be placed any more.
    assert mirror.apply(stored([b"d"], TOKENS[:4], parent=b"c")) is None


# -- the subscription, against vLLM's own publisher ------------------------------------------


class Subscription:
    """vLLM's ZmqEventPublisher and our subscriber on one pair of private endpoints."""

    def __init__(self, buffer_steps: int = 100) -> None:
        self.endpoints = private_endpoints()
        config = self.endpoints.kv_events_config()
        self.publisher = vllm_events.ZmqEventPublisher(
            0, endpoint=config.endpoint, replay_endpoint=config.replay_endpoint, buffer_steps=buffer_steps
        )
        self.batches: list[list[object]] = []
        self.lost = 0
        self.subscriber = KvEventSubscriber(self.endpoints, self.batches.append, self._lost)

    def _lost(self) -> None:
        self.lost += 1

    def publish(self, *events: object) -> None:
        self.publisher.publish(vllm_events.KVEventBatch(ts=time.time(), events=list(events)))

    async def received(self, count: int) -> None:
        for _ in range(200):
            if len(self.batches) >= count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(self.batches)} of {count} batches arrived")

    async def close(self) -> None:
        await self.subscriber.stop()
        self.publisher.shutdown()
        self.endpoints.remove()


async def test_batches_arrive_in_order_on_private_ipc_endpoints():
    subscription = Subscription()
    try:
        assert subscription.endpoints.events.startswith("ipc://")
        assert (subscription.endpoints.directory.stat().st_mode & 0o777) == 0o700
        subscription.subscriber.start()
        await asyncio.sleep(0.3)  # connected
        events = [stored([bytes([i])], TOKENS[:4]) for i in range(20)]
        for event in events:
            subscription.publish(event)
        await subscription.received(20)
        assert [batch[0] for batch in subscription.batches] == events
        assert subscription.lost == 0
    finally:
        await subscription.close()
    assert not subscription.endpoints.directory.exists()


async def test_a_late_subscriber_gets_the_missed_batches_from_the_replay_buffer():
    subscription = Subscription()
    try:
        early = [stored([b"early-%d" % i], TOKENS[:4]) for i in range(3)]
        for event in early:
            subscription.publish(event)  # nobody subscribed yet: these are not delivered
        await asyncio.sleep(0.3)
        subscription.subscriber.start()
        await asyncio.sleep(0.3)
        subscription.publish(removed([b"late"]))
        await subscription.received(4)
        assert [batch[0] for batch in subscription.batches] == [*early, removed([b"late"])]
        assert (subscription.lost, subscription.subscriber.lost_batches) == (0, 0)
    finally:
        await subscription.close()


async def test_batches_the_replay_buffer_no_longer_holds_are_reported_lost():
    subscription = Subscription(buffer_steps=1)
    try:
        for i in range(3):
            subscription.publish(stored([b"early-%d" % i], TOKENS[:4]))
        await asyncio.sleep(0.3)
        subscription.subscriber.start()
        await asyncio.sleep(0.3)
        subscription.publish(removed([b"late"]))
        await subscription.received(1)
        # The buffer holds the last batch only: 0..2 are gone, 3 arrives subscribed.
        assert (subscription.lost, subscription.subscriber.lost_batches) == (1, 3)
        assert subscription.batches == [[removed([b"late"])]]
    finally:
        await subscription.close()


# -- one in-process vLLM CPU engine ----------------------------------------------------------

VLLM_CONFIG = "tests/configs/vllm.yaml"
MODEL = "smollm2-135m"
SYSTEM = " ".join(f"Rule {n}: answer briefly, cite the file and line, and never invent an API." for n in range(40))
# A small KV cache (vLLM's num_gpu_blocks_override), so that a few prompts evict the oldest.
KV_CACHE_BLOCKS = 48


@pytest.fixture(scope="module")
async def engine():
    from fleetgate.replicas.vllm_engine import VllmEngine

    model = load_config(VLLM_CONFIG).model(MODEL)
    model.engine_args["num_gpu_blocks_override"] = KV_CACHE_BLOCKS
    vllm_engine = VllmEngine(model, "vllm-kv-test", kv_events=RecordingSink())
    await vllm_engine.start()
    yield vllm_engine
    await vllm_engine.stop()


@pytest.fixture()
def sink(engine) -> RecordingSink:
    recording: RecordingSink = engine.prefix_cache.sink
    recording.events.clear()
    recording.prompts.clear()
    return recording


def message(role: int, text: str) -> pb.Message:
    return pb.Message(role=role, content=[pb.ContentPart(text=text)])


def turn(history: list[pb.Message], max_tokens: int = 8, **fields) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        request_id=f"kv-{uuid.uuid4().hex[:8]}", model=MODEL, messages=history,
        sampling=pb.Sampling(temperature=0.0, max_tokens=max_tokens), **fields,
    )


async def run(engine, request: pb.GenerateRequest) -> tuple[str, pb.Usage]:
    events = [event async for event in engine.generate(request)]
    assert events[-1].finish.reason != pb.Finish.Reason.REASON_ERROR, events[-1]
    usage = next(event.usage for event in events if event.HasField("usage"))
    return "".join(event.text.text for event in events if event.HasField("text")), usage


async def settled(condition, what: str) -> None:
    """Events travel from the engine core process asynchronously: wait a little for them."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(what)


async def test_second_turn_reads_the_first_from_the_cache_and_the_sink_sees_our_chain(engine, sink):
    assert await engine.reset_prefix_cache()
    block = engine.prefix_cache.block_size
    history = [message(pb.ROLE_SYSTEM, SYSTEM), message(pb.ROLE_USER, "Where is the retry loop?")]
    prefix = pb.PrefixChain(block_hashes=[11, 12], block_bytes=512, total_bytes=1100)
    answer, first = await run(engine, turn(history, prefix=prefix))
    assert first.prompt_tokens >= 4 * block
    # The sink had the prompt before it was queued: the router's chain and our token blocks.
    (seen_prefix, prompt_hashes, prompt_tokens, block_size), = sink.prompts
    assert (seen_prefix, prompt_tokens, block_size) == (prefix, first.prompt_tokens, block)
    assert len(prompt_hashes) == first.prompt_tokens // block
    await settled(lambda: set(prompt_hashes) <= set(sink.stored()), "BlockStored for the first turn's prompt")
    assert sink.stored()[: len(prompt_hashes)] == prompt_hashes
    assert first.cache_written_tokens == len(prompt_hashes) * block - first.cached_tokens > 0

    history += [message(pb.ROLE_ASSISTANT, answer), message(pb.ROLE_USER, "And the backoff?")]
    sink.prompts.clear()
    _, second = await run(engine, turn(history))
    (_, second_hashes, _, _), = sink.prompts
    assert second_hashes[: len(prompt_hashes) - 1] == prompt_hashes[:-1]  # the same chain, extended
    assert second.cached_tokens >= (len(prompt_hashes) - 1) * block
    assert second.cache_written_tokens == second.prompt_tokens // block * block - second.cached_tokens


async def test_cached_prefix_over_grpc_answers_what_the_request_then_reports(engine, sink):
    from fleetgate.replicas.server import start_replica_server

    history = [message(pb.ROLE_SYSTEM, SYSTEM), message(pb.ROLE_USER, "List the config files.")]
    await run(engine, turn(history))
    follow_up = turn([*history, message(pb.ROLE_ASSISTANT, "config.py"), message(pb.ROLE_USER, "Thanks.")])
    server = await start_replica_server(engine, replica_id="vllm-kv-test", model_name=MODEL)
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            answer = await replica_pb2_grpc.ReplicaStub(channel).CachedPrefix(follow_up)
    finally:
        await server.stop(0)
    assert answer.supported
    assert answer.prompt_tokens == await engine.count_tokens(follow_up)
    assert answer.cached_tokens > 0 and answer.cached_tokens % engine.prefix_cache.block_size == 0
    _, usage = await run(engine, follow_up)
    assert usage.cached_tokens == answer.cached_tokens


async def test_reset_prefix_cache_clears_the_sink_and_the_mirror(engine, sink):
    history = [message(pb.ROLE_SYSTEM, SYSTEM), message(pb.ROLE_USER, "Summarise the README.")]
    await run(engine, turn(history))
    assert (await engine.cached_prefix(turn(history))).cached_tokens > 0
    sink.events.clear()
    assert await engine.reset_prefix_cache()
    assert sink.events == [AllBlocksCleared()]  # at once: vLLM's own comes with its next step
    assert (await engine.cached_prefix(turn(history))).cached_tokens == 0
    _, usage = await run(engine, turn(history))
    assert usage.cached_tokens == 0
    await settled(lambda: sink.events.count(AllBlocksCleared()) == 2, "vLLM's AllBlocksCleared")
    # vLLM's reset came before the blocks this request stored, in the same order the mirror applied them.
    assert sink.events.index(AllBlocksCleared(), 1) < next(
        i for i, event in enumerate(sink.events) if isinstance(event, BlockStored))
    assert (await engine.cached_prefix(turn(history))).cached_tokens > 0


async def test_eviction_removes_the_oldest_prompts_blocks_from_the_sink_and_the_mirror(engine, sink):
    def project(n: int) -> pb.GenerateRequest:
        history = [message(pb.ROLE_SYSTEM, f"Project {n}. {SYSTEM}"), message(pb.ROLE_USER, "Go on.")]
        return turn(history, max_tokens=1)

    await run(engine, project(0))
    (_, oldest, _, _), = sink.prompts
    assert (await engine.cached_prefix(project(0))).cached_tokens > 0

    def evicted() -> bool:
        return any(isinstance(e, BlockRemoved) and set(e.block_hashes) & set(oldest) for e in sink.events)

    for n in range(1, 3 * KV_CACHE_BLOCKS // len(oldest)):
        await run(engine, project(n))
        if evicted():
            break
    await settled(evicted, "BlockRemoved for the oldest prompt's blocks")
    assert (await engine.cached_prefix(project(0))).cached_tokens < len(oldest) * engine.prefix_cache.block_size
