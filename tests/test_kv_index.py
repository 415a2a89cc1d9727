"""The prefix index against the sim's KV cache, through a real Redis: what the engine caches is what routers read.

A sim engine hands its KV events to the replica's ``KvIndexPublisher``; the
router's ``PrefixIndex`` reads the set it writes. Hits are predicted (a prompt's
blocks are held once its prefill ran, and the prediction matches the cached
tokens the engine then reports), evictions forget, a reset clears, the periodic
rewrite drops what a router learned but the engine does not hold, and a drained
replica leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from fleetgate.core.config import ModelConfig, SimConfig
from fleetgate.core.kv_index import kv_key
from fleetgate.replicas.kv_index.block_map import RouterBlockMap
from fleetgate.replicas.kv_index.publisher import KvIndexPublisher
from fleetgate.replicas.sim_engine import SimEngine
from fleetgate.replicas.token_blocks import block_hashes
from fleetgate.router.routing.prefix_chain import PrefixChain, prefix_chain
from fleetgate.router.routing.prefix_index import PrefixIndex
from fleetgate.v1 import replica_pb2 as pb

ROUTER_BLOCK = 256
SIM_BLOCK = 16


def request(*texts: str) -> tuple[pb.GenerateRequest, PrefixChain]:
    """A request of user and assistant turns, and its router chain, sent along as the router does."""
    roles = (pb.ROLE_USER, pb.ROLE_ASSISTANT)
    generate = pb.GenerateRequest(
        request_id=uuid.uuid4().hex, model="sim",
        messages=[pb.Message(role=roles[i % 2], content=[pb.ContentPart(text=t)]) for i, t in enumerate(texts)],
        sampling=pb.Sampling(max_tokens=4),
    )
    chain = prefix_chain(generate, ROUTER_BLOCK)
    generate.prefix.CopyFrom(chain.to_proto())
    return generate, chain


def words(prefix: str, count: int) -> str:
    return " ".join(f"{prefix}{index}" for index in range(count))


async def run(engine: SimEngine, generate: pb.GenerateRequest) -> pb.Usage:
    usage = pb.Usage()
    async for event in engine.generate(generate):
        if event.HasField("usage"):
            usage = event.usage
    return usage


@pytest.fixture()
async def cluster(redis_url: str) -> Any:
    """One sim engine publishing into Redis, and a router-side index reading it."""
    replica_id = f"kv-{uuid.uuid4().hex[:8]}"

    async def start(kv_cache_blocks: int = 4096, resync_seconds: float = 3600.0) -> tuple[SimEngine, PrefixIndex]:
        publisher = KvIndexPublisher(redis_url, replica_id, ttl_seconds=60, resync_seconds=resync_seconds)
        sim = SimConfig(ttft_ms=0, itl_ms=0, kv_block_size=SIM_BLOCK, kv_cache_blocks=kv_cache_blocks)
        engine = SimEngine(ModelConfig(name="sim", engine="sim", sim=sim), replica_id, kv_events=publisher)
        await publisher.start()
        started.append(publisher)
        return engine, PrefixIndex(redis_client, kv_ttl_seconds=60, session_ttl_seconds=60)

    redis_client = aioredis.from_url(redis_url)
    started: list[KvIndexPublisher] = []
    yield replica_id, start
    for publisher in started:
        await publisher.stop()
    await redis_client.aclose()


async def held(index: PrefixIndex, replica_id: str, chain: PrefixChain) -> int:
    return (await index.lookup("sim", None, [replica_id], chain.digests)).held_blocks[replica_id]


async def eventually(check: Any, timeout: float = 3.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.02)


async def test_a_served_prompt_is_held_and_its_next_turn_is_predicted_as_the_engine_caches_it(cluster: Any) -> None:
    replica_id, start = cluster
    engine, index = await start()
    first, first_chain = request(words("turn", 600))
    assert await held(index, replica_id, first_chain) == 0
    await run(engine, first)
    blocks = len(first_chain.digests)
    assert await eventually(lambda: held(index, replica_id, first_chain)) >= blocks - 1

    # The next turn: the first prompt plus more. What the index predicts is what the engine reads from its cache.
    second, second_chain = request(words("turn", 600), words("answer", 100), words("more", 200))
    predicted_blocks = await held(index, replica_id, second_chain)
    usage = await run(engine, second)
    predicted_tokens = predicted_blocks * ROUTER_BLOCK / second_chain.total_bytes * usage.prompt_tokens
    assert usage.cached_tokens > 500
    # within one router block and one engine block of the truth
    assert abs(predicted_tokens - usage.cached_tokens) <= ROUTER_BLOCK / 4 + SIM_BLOCK + 8


async def test_evicted_blocks_are_forgotten_and_a_reset_clears_the_set(cluster: Any, redis_url: str) -> None:
    replica_id, start = cluster
    engine, index = await start(kv_cache_blocks=60)  # 960 tokens: one long prompt at a time
    first, first_chain = request(words("first", 900))
    await run(engine, first)
    before = await eventually(lambda: held(index, replica_id, first_chain))
    assert before >= len(first_chain.digests) - 1
    other, other_chain = request(words("other", 900))
    await run(engine, other)  # needs 57 of the 60 blocks: all but the first prompt's 3 leading ones are evicted

    async def first_forgotten() -> bool:
        return await held(index, replica_id, first_chain) <= 2

    assert await eventually(first_forgotten)
    assert await held(index, replica_id, other_chain) > 0
    assert engine.reset_prefix_cache()
    assert await eventually(lambda: _empty(redis_url, replica_id))


async def _empty(redis_url: str, replica_id: str) -> bool:
    return redis.Redis.from_url(redis_url).scard(kv_key(replica_id)) == 0


async def test_the_rewrite_keeps_what_the_engine_holds_and_drops_what_it_does_not(
    cluster: Any, redis_url: str
) -> None:
    replica_id, start = cluster
    engine, index = await start(resync_seconds=0.3)
    served, served_chain = request(words("kept", 400))
    await run(engine, served)
    _, guessed_chain = request(words("never-served", 400))
    await index.learn("sim", "session-1", replica_id, guessed_chain.digests)  # what a router learns
    assert await held(index, replica_id, guessed_chain) == len(guessed_chain.digests)

    async def guess_dropped() -> bool:
        return await held(index, replica_id, guessed_chain) == 0

    assert await eventually(guess_dropped, timeout=5.0)
    assert await held(index, replica_id, served_chain) >= len(served_chain.digests) - 1
    view = await index.lookup("sim", "session-1", [replica_id], [])
    assert view.pinned == replica_id  # the session pin is the router's own, not rewritten


async def test_a_drained_replica_takes_its_set_with_it(redis_url: str) -> None:
    replica_id = f"kv-{uuid.uuid4().hex[:8]}"
    publisher = KvIndexPublisher(redis_url, replica_id, ttl_seconds=60, resync_seconds=3600)
    engine = SimEngine(ModelConfig(name="sim", engine="sim", sim=SimConfig(ttft_ms=0, itl_ms=0)), replica_id,
                       kv_events=publisher)
    await publisher.start()
    await run(engine, request(words("w", 300))[0])
    sync = redis.Redis.from_url(redis_url)
    for _ in range(100):
        if sync.scard(kv_key(replica_id)):
            break
        await asyncio.sleep(0.02)
    assert sync.scard(kv_key(replica_id)) > 0 and 0 < sync.ttl(kv_key(replica_id)) <= 60
    await publisher.stop()
    assert not sync.exists(kv_key(replica_id))


def test_router_blocks_map_onto_the_token_block_holding_their_end() -> None:
    tokens = [f"t{i}" for i in range(100)]
    token_blocks = block_hashes(tokens, 10)  # 10 full blocks
    prefix = pb.PrefixChain(block_hashes=[1, 2, 3, 4], block_bytes=250, total_bytes=1000)  # 1,000 bytes: 100 tokens
    mapping = RouterBlockMap()
    assert mapping.prompt(prefix, token_blocks, 100, 10) == set()
    # router block 0 ends at byte 250 = token 25, in token block 2; block 3 ends at token 100, in token block 9.
    assert mapping.stored(token_blocks[:3]) == {(1).to_bytes(8, "big")}
    assert mapping.stored(token_blocks[3:]) == {(n).to_bytes(8, "big") for n in (2, 3, 4)}
    assert mapping.removed(token_blocks[9:]) == {(4).to_bytes(8, "big")}
    assert mapping.held() == {(n).to_bytes(8, "big") for n in (1, 2, 3)}
    # A prompt whose blocks are cached already is held at once (a hit).
    again = RouterBlockMap()
    again.stored(token_blocks)
    assert again.prompt(prefix, token_blocks, 100, 10) == {(n).to_bytes(8, "big") for n in (1, 2, 3, 4)}
    mapping.cleared()
    assert mapping.held() == set() and mapping.mapped_blocks == 0
