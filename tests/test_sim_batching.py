"""The simulator as a continuous-batching engine over a paged KV cache, with the real ``SimEngine`` in asyncio.

Cached tokens in usage and a faster first token for a repeated prompt, LRU eviction
under a small cache, the ``max_num_seqs`` queue, waiting for KV blocks, KV usage in
``load()``, aborts while waiting, and the KV events in order. Time is asserted only
as lower bounds the sim's sleeps guarantee, or as the order of events.
"""

from __future__ import annotations

import asyncio
import collections.abc
import time
from typing import Any

import pytest

from fleetgate.core.config import ModelConfig, SimConfig
from fleetgate.replicas.kv_events import BlockRemoved, BlockStored, KvCacheEvent
from fleetgate.replicas.sim_engine import SimEngine
from fleetgate.replicas.sim_engine.scheduler import Sequence
from fleetgate.replicas.sim_engine.tokens import prompt_tokens
from fleetgate.replicas.token_blocks import block_hashes
from fleetgate.v1 import replica_pb2 as pb

Reason = pb.Finish.Reason
FAST = {"ttft_ms": 0, "itl_ms": 0}


class Timeline:
    """What happened, in order: each request's events by kind, and the KV events (a ``KvEventSink``)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []

    def prompt(
        self, prefix: pb.PrefixChain, block_hashes: collections.abc.Sequence[int], prompt_tokens: int, block_size: int
    ) -> None:
        return None

    def publish(self, event: KvCacheEvent) -> None:
        self.entries.append(("kv", event))

    def index(self, who: str, what: Any) -> int:
        return self.entries.index((who, what))

    def kv_events(self) -> list[KvCacheEvent]:
        return [what for who, what in self.entries if who == "kv"]


def sim_engine(timeline: Timeline | None = None, **sim: Any) -> SimEngine:
    """A sim engine with prefix caching on unless ``sim`` says otherwise."""
    settings = SimConfig(**{"prefix_caching": True, **sim})
    return SimEngine(ModelConfig(name="sim", engine="sim", sim=settings), "sim-0", kv_events=timeline)


def raw(request_id: str, prefix: str, words: int) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        request_id=request_id, model="sim", raw_prompt=" ".join(f"{prefix}{index}" for index in range(words))
    )


def hashes(request: pb.GenerateRequest, block_size: int) -> list[int]:
    return block_hashes(prompt_tokens(request), block_size)


async def collect(engine: SimEngine, request: pb.GenerateRequest, timeline: Timeline | None = None) -> list[Any]:
    events = []
    async for event in engine.generate(request):
        events.append(event)
        if timeline is not None:
            timeline.entries.append((request.request_id, event.WhichOneof("event")))
    return events


async def first_token_seconds(engine: SimEngine, request: pb.GenerateRequest) -> tuple[float, pb.Usage]:
    began = time.perf_counter()
    first, usage = None, None
    async for event in engine.generate(request):
        if event.HasField("text") and first is None:
            first = time.perf_counter() - began
        if event.HasField("usage"):
            usage = event.usage
    assert first is not None and usage is not None
    return first, usage


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_a_repeated_prompt_reports_cached_tokens_and_gets_its_first_token_sooner() -> None:
    engine = sim_engine(prefill_ms_per_1k_tokens=1000, output_tokens=2, **FAST)  # 1 ms per uncached token
    cold, cold_usage = await first_token_seconds(engine, raw("cold", "w", 320))
    warm, warm_usage = await first_token_seconds(engine, raw("warm", "w", 320))
    assert (cold_usage.prompt_tokens, cold_usage.cached_tokens) == (320, 0)
    assert (warm_usage.prompt_tokens, warm_usage.cached_tokens) == (320, 304)  # 19 of 20 blocks: one token computed
    assert cold >= 0.320
    assert warm < cold


async def test_the_prefill_cost_counts_only_uncached_tokens_and_keeps_prefill_ms_per_token() -> None:
    engine = sim_engine(prefill_ms_per_token=0.5, prefill_ms_per_1k_tokens=500, **FAST)  # 1 ms per token in all
    await collect(engine, raw("first", "w", 320))
    costs = []
    for prefix in ("w", "other"):
        sequence = Sequence(hashes(raw("", prefix, 320), 16), 320, 320 + 32, 16)
        engine.scheduler.enqueue(sequence)
        costs.append(engine.scheduler.prefill_ms(sequence))
        engine.scheduler.finish(sequence)
    assert costs == [16.0, 320.0]  # the repeat computes one block, a new prompt all of it


async def test_prefills_run_one_at_a_time() -> None:
    engine = sim_engine(prefill_ms_per_1k_tokens=1000, output_tokens=1, **FAST)
    began = time.perf_counter()
    firsts = await asyncio.gather(*(first_token_seconds(engine, raw(name, name, 100)) for name in ("a", "b")))
    assert max(seconds for seconds, _ in firsts) >= 0.200  # the second prefill waits for the first
    assert time.perf_counter() - began >= 0.200


async def test_a_small_cache_evicts_the_least_recently_used_prefix_and_says_so() -> None:
    timeline = Timeline()
    engine = sim_engine(timeline, kv_block_size=4, kv_cache_blocks=10, output_tokens=4, **FAST)
    a, b, c = raw("a", "a", 13), raw("b", "b", 13), raw("c", "c", 25)  # 5, 5 and 8 blocks with their 4 tokens
    for request in (a, b):
        await collect(engine, request, timeline)
    assert not any(isinstance(event, BlockRemoved) for event in timeline.kv_events())
    await collect(engine, c, timeline)
    a_blocks, b_blocks = hashes(a, 4), hashes(b, 4)
    removed = [event for event in timeline.kv_events() if isinstance(event, BlockRemoved)]
    assert removed == [BlockRemoved((a_blocks[2], a_blocks[1], a_blocks[0], b_blocks[2]))]
    b_again = await collect(engine, raw("b-again", "b", 13))
    assert b_again[-2].usage.cached_tokens == 8  # b lost only its last block
    a_again = await collect(engine, raw("a-again", "a", 13))
    assert a_again[-2].usage.cached_tokens == 0  # a's prefix was forgotten


async def test_kv_events_come_in_order_stored_after_the_prefill_removed_on_eviction() -> None:
    timeline = Timeline()
    engine = sim_engine(
        timeline, kv_block_size=4, kv_cache_blocks=10, output_tokens=4, prefill_ms_per_1k_tokens=100, **FAST
    )
    a, b, c = raw("a", "a", 13), raw("b", "b", 13), raw("c", "c", 25)
    for request in (a, b, c):
        await collect(engine, request, timeline)
    a_stored = ("kv", BlockStored(tuple(hashes(a, 4)), None, 12, 4))
    c_blocks = hashes(c, 4)
    c_stored = ("kv", BlockStored(tuple(c_blocks), None, 24, 4))
    removed = next(entry for entry in timeline.entries if isinstance(entry[1], BlockRemoved))
    entries = timeline.entries
    assert timeline.index("a", "started") < entries.index(a_stored) < timeline.index("a", "text")
    # c's admission evicts (before its started event), its prefill stores.
    assert timeline.index("b", "finish") < entries.index(removed) < timeline.index("c", "started")
    assert timeline.index("c", "started") < entries.index(c_stored) < timeline.index("c", "text")
    kinds = [type(event).__name__ for event in timeline.kv_events()]
    assert kinds == ["BlockStored", "BlockStored", "BlockRemoved", "BlockStored"]


async def test_max_num_seqs_queues_the_extra_request_until_one_finishes() -> None:
    timeline = Timeline()
    engine = sim_engine(timeline, max_num_seqs=1, ttft_ms=0, itl_ms=20, output_tokens=5)
    first = asyncio.create_task(collect(engine, raw("first", "x", 5), timeline))
    await until(lambda: ("first", "text") in timeline.entries)
    second = asyncio.create_task(collect(engine, raw("second", "y", 5), timeline))
    await until(lambda: ("second", "started") in timeline.entries)
    load = engine.load()
    assert (load.running, load.waiting) == (1, 1)
    await asyncio.gather(first, second)
    assert timeline.index("first", "usage") < timeline.index("second", "text")
    assert (engine.load().running, engine.load().waiting) == (0, 0)


async def test_a_request_that_cannot_get_its_kv_blocks_waits_and_load_reports_kv_usage() -> None:
    timeline = Timeline()
    engine = sim_engine(timeline, kv_block_size=4, kv_cache_blocks=8, ttft_ms=0, itl_ms=20, output_tokens=4)
    assert engine.load().kv_cache_usage == 0.0
    first = asyncio.create_task(collect(engine, raw("first", "x", 13), timeline))  # 5 of 8 blocks
    await until(lambda: ("first", "text") in timeline.entries)
    second = asyncio.create_task(collect(engine, raw("second", "y", 13), timeline))
    await until(lambda: ("second", "started") in timeline.entries)
    load = engine.load()
    assert (load.running, load.waiting, load.kv_cache_usage) == (1, 1, 5 / 8)
    await asyncio.gather(first, second)
    assert timeline.index("first", "usage") < timeline.index("second", "text")
    assert engine.load().kv_cache_usage == 0.0


async def test_itl_grows_with_the_batch() -> None:
    engine = sim_engine(ttft_ms=0, itl_ms=10, itl_batch_penalty=0.5, output_tokens=50)
    assert engine.scheduler.itl_ms() == 10.0
    generators = [engine.generate(raw(name, name, 3)) for name in ("a", "b", "c")]
    for generator in generators:
        assert (await anext(generator)).HasField("started")
    assert engine.load().running == 3
    assert engine.scheduler.itl_ms() == 20.0  # 10 × (1 + 0.5 × 2)
    for generator in generators:
        await generator.aclose()
    assert engine.load().running == 0


@pytest.mark.parametrize("how", ["abort", "close"])
async def test_a_waiting_request_that_is_aborted_or_closed_leaves_the_queue(how: str) -> None:
    engine = sim_engine(max_num_seqs=1, ttft_ms=0, itl_ms=20, output_tokens=5)
    first = asyncio.create_task(collect(engine, raw("first", "x", 5)))
    await until(lambda: engine.load().running == 1)
    waiting = engine.generate(raw("waiting", "y", 5))
    assert (await anext(waiting)).HasField("started")
    assert engine.load().waiting == 1
    if how == "abort":
        assert await engine.abort("waiting")
        rest = [event async for event in waiting]
        assert [event.WhichOneof("event") for event in rest] == ["usage", "finish"]
        assert rest[-1].finish.reason == Reason.REASON_ABORT
        assert rest[0].usage.completion_tokens == 0
    else:
        await waiting.aclose()
    assert engine.load().waiting == 0
    events = await first
    assert events[-1].finish.reason == Reason.REASON_STOP
    third = await collect(engine, raw("third", "z", 5))  # the slot was not lost
    assert third[-1].finish.reason == Reason.REASON_STOP
    assert (engine.load().running, engine.load().waiting, engine.load().kv_cache_usage) == (0, 0, 0.0)


async def test_a_request_larger_than_the_whole_cache_is_refused() -> None:
    engine = sim_engine(kv_block_size=4, kv_cache_blocks=4, output_tokens=4, **FAST)
    events = await collect(engine, raw("big", "x", 13))  # 17 tokens: 5 blocks
    assert [event.WhichOneof("event") for event in events] == ["finish"]
    assert events[0].finish.error_code == pb.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED
    assert "kv_cache_blocks" in events[0].finish.error_message


async def test_the_default_capacity_never_evicts_small_requests() -> None:
    timeline = Timeline()
    engine = sim_engine(timeline, ttft_ms=0, itl_ms=1, output_tokens=8)
    results = await asyncio.gather(*(collect(engine, raw(f"r{index}", f"p{index}_", 40)) for index in range(32)))
    assert all(events[-1].finish.reason == Reason.REASON_STOP for events in results)
    assert sum(isinstance(event, BlockStored) for event in timeline.kv_events()) == 32
    assert not any(isinstance(event, BlockRemoved) for event in timeline.kv_events())
    assert engine.load().kv_cache_usage == 0.0


async def test_without_prefix_caching_nothing_is_cached_but_kv_usage_is_reported() -> None:
    timeline = Timeline()
    assert SimConfig().prefix_caching  # the default
    engine = SimEngine(ModelConfig(name="sim", engine="sim", sim=SimConfig(itl_ms=20, ttft_ms=0, prefix_caching=False)),
                       "sim-0", kv_events=timeline)
    await collect(engine, raw("first", "w", 100))
    generator = engine.generate(raw("again", "w", 100))
    assert (await anext(generator)).HasField("started")
    assert engine.load().kv_cache_usage == 9 / 65536  # 100 + 32 tokens in blocks of 16
    events = [event async for event in generator]
    assert events[-2].usage.cached_tokens == 0
    assert timeline.kv_events() == []
