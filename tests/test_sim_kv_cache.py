"""The simulator's paged KV cache, pure: prompt tokens, the block hash chain, prefix reuse, LRU eviction, events."""

from __future__ import annotations

from collections.abc import Sequence

from fleetgate.replicas.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KvCacheEvent
from fleetgate.replicas.sim_engine.kv_cache import PagedKvCache
from fleetgate.replicas.sim_engine.tokens import IMAGE_TOKENS, count_prompt_tokens, prompt_tokens
from fleetgate.replicas.token_blocks import block_hashes
from fleetgate.v1 import replica_pb2 as pb

BLOCK = 4


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[KvCacheEvent] = []

    def prompt(self, prefix: pb.PrefixChain, block_hashes: Sequence[int], prompt_tokens: int, block_size: int) -> None:
        return None

    def publish(self, event: KvCacheEvent) -> None:
        self.events.append(event)


def words(prefix: str, count: int) -> list[str]:
    return [f" {prefix}{index}" for index in range(count)]


def cache(num_blocks: int) -> tuple[PagedKvCache, RecordingSink]:
    sink = RecordingSink()
    return PagedKvCache(num_blocks, BLOCK, sink, prefix_caching=True), sink


def message(role: pb.Role.ValueType, text: str) -> pb.Message:
    return pb.Message(role=role, content=[pb.ContentPart(text=text)])


def test_prompt_tokens_render_the_request_in_order_and_match_the_count() -> None:
    request = pb.GenerateRequest(
        tools=[pb.Tool(name="Bash", description="run it", parameters_json='{"type": "object"}')],
        messages=[message(pb.ROLE_SYSTEM, "Be brief."),
                  pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text="look"),
                                                          pb.ContentPart(image_url="https://example.com/a.png")])],
    )
    tokens = prompt_tokens(request)
    assert tokens[:6] == ["Bash", " run", " it", ' {"type":', ' "object"}', "<|ROLE_SYSTEM|>"]
    assert tokens[6:10] == ["Be", " brief.", "<|ROLE_USER|>", "look"]
    assert len(set(tokens[10:])) == 1 and len(tokens[10:]) == IMAGE_TOKENS
    assert count_prompt_tokens(request) == len(tokens)
    other_image = pb.GenerateRequest(messages=[pb.Message(role=pb.ROLE_USER, content=[
        pb.ContentPart(text="look"), pb.ContentPart(image_url="https://example.com/b.png")])])
    assert prompt_tokens(other_image)[-1] != tokens[-1]


def test_requests_sharing_a_prefix_share_their_leading_block_hashes() -> None:
    system = message(pb.ROLE_SYSTEM, " ".join(f"rule{index}" for index in range(20)))
    first = pb.GenerateRequest(messages=[system, message(pb.ROLE_USER, "first question")])
    second = pb.GenerateRequest(messages=[system, message(pb.ROLE_USER, "another one entirely")])
    first_hashes = block_hashes(prompt_tokens(first), BLOCK)
    second_hashes = block_hashes(prompt_tokens(second), BLOCK)
    assert first_hashes[:5] == second_hashes[:5]  # 1 role marker + 20 words: 5 full blocks in common
    assert first_hashes[5] != second_hashes[5]
    assert block_hashes(prompt_tokens(first), BLOCK) == first_hashes  # deterministic
    assert all(0 <= block < 2**63 for block in first_hashes)


def test_only_full_blocks_are_hashed_and_each_covers_its_parent() -> None:
    assert len(block_hashes(words("t", 11), BLOCK)) == 2
    assert block_hashes(words("t", 3), BLOCK) == []
    # The same tokens after a different first block hash differently.
    after_a, after_b = (block_hashes(words(first, 4) + words("t", 4), BLOCK) for first in ("a", "b"))
    assert after_a[1] != after_b[1]


def test_a_repeated_prompt_shares_its_cached_blocks_after_the_first_commits() -> None:
    kv, sink = cache(num_blocks=20)
    hashes = block_hashes(words("p", 13), BLOCK)
    first = kv.allocate(hashes, 13, 13 + 4)
    assert first is not None and first.cached_tokens == 0
    concurrent = kv.allocate(hashes, 13, 17)
    assert concurrent is not None and concurrent.cached_tokens == 0  # nothing is cached before the prefill
    kv.commit(first)
    assert sink.events == [BlockStored(tuple(hashes), None, 3 * BLOCK, BLOCK)]
    again = kv.allocate(hashes, 13, 17)
    assert again is not None and again.cached_tokens == 12
    assert kv.cached_blocks == 3


def test_a_fully_cached_prompt_still_computes_its_last_token() -> None:
    kv, _ = cache(num_blocks=20)
    hashes = block_hashes(words("p", 12), BLOCK)
    first = kv.allocate(hashes, 12, 12)
    assert first is not None
    kv.commit(first)
    kv.release(first)
    again = kv.allocate(hashes, 12, 12)
    assert again is not None and again.cached_tokens == 8


def test_usage_counts_blocks_in_use_and_shared_blocks_once() -> None:
    kv, _ = cache(num_blocks=10)
    hashes = block_hashes(words("p", 13), BLOCK)
    first = kv.allocate(hashes, 13, 17)  # 5 blocks
    assert first is not None and kv.usage == 0.5
    kv.commit(first)
    second = kv.allocate(hashes, 13, 17)  # shares 3, 2 of its own
    assert second is not None and kv.usage == 0.7
    kv.release(first)
    assert kv.usage == 0.5
    kv.release(second)
    kv.release(second)  # idempotent
    assert kv.usage == 0.0
    assert kv.cached_blocks == 3  # cached blocks nobody uses are free, and still cached


def test_eviction_takes_empty_blocks_first_then_the_least_recently_used_tail_first() -> None:
    kv, sink = cache(num_blocks=10)
    prompts = {name: block_hashes(words(name, 13), BLOCK) for name in ("a", "b")}
    for name in ("a", "b"):
        allocation = kv.allocate(prompts[name], 13, 17)
        assert allocation is not None
        kv.commit(allocation)
        kv.release(allocation)
    assert not any(isinstance(event, BlockRemoved) for event in sink.events)  # 4 empty + 6 cached
    long_prompt = block_hashes(words("c", 25), BLOCK)
    big = kv.allocate(long_prompt, 25, 29)  # 8 blocks: the 4 empty ones, then 4 evicted
    assert big is not None
    a, b = prompts["a"], prompts["b"]
    assert sink.events[-1] == BlockRemoved((a[2], a[1], a[0], b[2]))
    assert kv.cached_prefix(a, 13) == 0
    assert kv.cached_prefix(b, 13) == 2


def test_a_reused_prefix_becomes_recent_again() -> None:
    kv, sink = cache(num_blocks=10)
    a, b = block_hashes(words("a", 13), BLOCK), block_hashes(words("b", 13), BLOCK)
    for hashes in (a, b, a):  # a is used again after b
        allocation = kv.allocate(hashes, 13, 17)
        assert allocation is not None
        kv.commit(allocation)
        kv.release(allocation)
    assert kv.allocate(block_hashes(words("c", 25), BLOCK), 25, 29) is not None
    assert sink.events[-1] == BlockRemoved((b[2], b[1], b[0], a[2]))


def test_allocation_fails_without_blocks_and_never_evicts_blocks_in_use() -> None:
    kv, sink = cache(num_blocks=6)
    a = kv.allocate(block_hashes(words("a", 13), BLOCK), 13, 17)
    assert a is not None
    kv.commit(a)
    assert kv.allocate(block_hashes(words("b", 13), BLOCK), 13, 17) is None  # 5 of 6 in use
    assert kv.usage == 5 / 6
    kv.release(a)
    assert kv.allocate(block_hashes(words("b", 13), BLOCK), 13, 17) is not None  # now a's blocks may go
    assert isinstance(sink.events[-1], BlockRemoved)


def test_a_block_cached_meanwhile_by_another_sequence_is_not_stored_twice() -> None:
    kv, sink = cache(num_blocks=20)
    hashes = block_hashes(words("p", 13), BLOCK)
    first, second = kv.allocate(hashes, 13, 13), kv.allocate(hashes, 13, 13)
    assert first is not None and second is not None
    kv.commit(first)
    kv.commit(second)
    assert sink.events == [BlockStored(tuple(hashes), None, 12, BLOCK)]
    kv.release(first)
    kv.release(second)
    assert kv.usage == 0.0 and kv.cached_blocks == 3


def test_stored_events_name_the_parent_of_their_first_block() -> None:
    kv, sink = cache(num_blocks=20)
    shared = words("s", 8)
    first = kv.allocate(block_hashes(shared + words("x", 5), BLOCK), 13, 13)
    assert first is not None
    kv.commit(first)
    longer = block_hashes(shared + words("y", 9), BLOCK)
    second = kv.allocate(longer, 17, 17)
    assert second is not None and second.cached_tokens == 8
    kv.commit(second)
    assert sink.events[-1] == BlockStored((longer[2], longer[3]), longer[1], 8, BLOCK)


def test_reset_clears_the_cache_only_when_nothing_is_in_use() -> None:
    kv, sink = cache(num_blocks=10)
    allocation = kv.allocate(block_hashes(words("a", 13), BLOCK), 13, 13)
    assert allocation is not None
    kv.commit(allocation)
    assert not kv.reset()
    kv.release(allocation)
    assert kv.reset()
    assert sink.events[-1] == AllBlocksCleared()
    assert kv.cached_blocks == 0
    assert kv.allocate(block_hashes(words("b", 37), BLOCK), 37, 40) is not None  # all 10 blocks are free
