"""The prefix policy's pure parts: the router's hash chain over a canonical prompt, and the cache-vs-load cost.

A chain is shared exactly as far as two prompts share their bytes (whatever their
tail); the cost model prefers the replica holding the prompt, pins sessions, and
spills when that replica is saturated, saying why in its reason.
"""

from __future__ import annotations

from fleetgate.core.config import PrefixRoutingConfig
from fleetgate.core.registry import Load, ReplicaRecord
from fleetgate.router.routing.cache_cost import decide
from fleetgate.router.routing.prefix_chain import canonical_bytes, prefix_chain
from fleetgate.v1 import replica_pb2 as pb

BLOCK = 64


def conversation(*turns: str, tools: tuple[str, ...] = ("read_file",)) -> pb.GenerateRequest:
    messages = [pb.Message(role=pb.ROLE_SYSTEM, content=[pb.ContentPart(text="You are a careful coding agent. " * 8)])]
    for index, text in enumerate(turns):
        role = pb.ROLE_USER if index % 2 == 0 else pb.ROLE_ASSISTANT
        messages.append(pb.Message(role=role, content=[pb.ContentPart(text=text)]))
    return pb.GenerateRequest(
        model="m", messages=messages, tools=[pb.Tool(name=name, parameters_json='{"type":"object"}') for name in tools]
    )


def test_the_next_turn_shares_every_full_block_of_the_previous_prompt() -> None:
    first = conversation("Fix the failing test in tests/test_io.py, please.")
    second = conversation("Fix the failing test in tests/test_io.py, please.", "I will read it first.", "Go on.")
    a, b = prefix_chain(first, BLOCK), prefix_chain(second, BLOCK)
    assert a.total_bytes == len(canonical_bytes(first))
    assert len(a.digests) == a.total_bytes // BLOCK  # full blocks only
    assert b.digests[:len(a.digests)] == a.digests and len(b.digests) > len(a.digests)
    assert prefix_chain(first, BLOCK) == a  # deterministic
    proto = a.to_proto()
    assert list(proto.block_hashes) == [int.from_bytes(d, "big") for d in a.digests]
    assert (proto.block_bytes, proto.total_bytes) == (BLOCK, a.total_bytes)


def test_the_chain_parts_where_the_bytes_part() -> None:
    one, two = (conversation("same opening " * 20 + f"then {x}" + " and the same rest" * 20) for x in "AB")
    base, other = prefix_chain(one, BLOCK), prefix_chain(two, BLOCK)
    shared = next(i for i, (x, y) in enumerate(zip(base.digests, other.digests, strict=True)) if x != y)
    text_one, text_two = canonical_bytes(one), canonical_bytes(two)
    differing_byte = next(i for i, (x, y) in enumerate(zip(text_one, text_two, strict=True)) if x != y)
    assert shared == differing_byte // BLOCK and len(base.digests) > shared + 3
    # Different tools change the chain from the start; a role or a tool call changes it where it stands.
    assert prefix_chain(conversation("hi " * 40, tools=("grep",)), BLOCK).digests[0] != base.digests[0]


def test_the_prompt_is_its_tools_then_its_messages_and_nothing_else() -> None:
    call = pb.Message(role=pb.ROLE_ASSISTANT, reasoning="think", tool_calls=[pb.ToolCall(name="grep", arguments="{}")])
    answer = pb.Message(role=pb.ROLE_TOOL, tool_call_id="call_1", content=[pb.ContentPart(text="3 matches")])
    tool = pb.Tool(name="grep", parameters_json='{"type":"object"}')
    request = pb.GenerateRequest(request_id="r1", model="m", tools=[tool], messages=[call, answer])
    data = canonical_bytes(request)
    assert data == tool.SerializeToString() + call.SerializeToString() + answer.SerializeToString()
    # What varies per request (its id, sampling, the caller) is not part of it.
    again = pb.GenerateRequest(request_id="r2", model="m", tools=[tool], messages=[call, answer],
                               sampling=pb.Sampling(max_tokens=9), caller=pb.Caller(key_id="k"))
    assert canonical_bytes(again) == data
    assert canonical_bytes(pb.GenerateRequest(raw_prompt="as is")) == b"as is"


def replica(replica_id: str, running: int = 0, waiting: int = 0, kv: float = -1.0) -> ReplicaRecord:
    return ReplicaRecord(replica_id=replica_id, model="m", engine="sim", address=f"{replica_id}:1",
                         load=Load(running=running, waiting=waiting, kv_cache_usage=kv))


def busy(record: ReplicaRecord) -> int:
    return record.load.running + record.load.waiting


SETTINGS = PrefixRoutingConfig(prefill_weight=1.0, load_weight=8.0, kv_weight=4.0, max_load=16, max_extra_load=4)


def test_the_replica_holding_the_prompt_wins_until_its_load_outweighs_the_prefill_it_saves() -> None:
    a, b = replica("a", running=2), replica("b")
    decision = decide([a, b], {"a": 0.9}, 40, busy, SETTINGS)
    assert (decision.replica.replica_id, decision.reason, decision.cached_share) == ("a", "hit", 0.9)
    # 40 blocks × 0.9 saved = 36 < 8 × 5 extra requests: the prefill is cheaper than the queue.
    loaded = replica("a", running=4)
    assert decide([loaded, b], {"a": 0.9}, 40, busy, SETTINGS).reason == "hit"
    assert decide([replica("a", running=5), b], {"a": 0.9}, 40, busy,
                  PrefixRoutingConfig(load_weight=8.0, max_extra_load=8)).replica.replica_id == "b"


def test_a_saturated_replica_spills_its_prefix_and_its_session() -> None:
    hot, idle = replica("hot", running=5), replica("idle")  # 5 above the least: past max_extra_load
    decision = decide([hot, idle], {"hot": 1.0}, 400, busy, SETTINGS)
    assert (decision.replica.replica_id, decision.reason) == ("idle", "spill")
    assert decide([hot, idle], {}, 400, busy, SETTINGS, pinned="hot").reason == "spill"
    capped = replica("hot", running=16)  # at max_load: saturated even when everyone is
    other = replica("other", running=14)
    assert decide([capped, other], {"hot": 1.0}, 400, busy, SETTINGS).replica.replica_id == "other"
    everyone = [replica("x", running=20), replica("y", running=20)]
    assert decide(everyone, {"x": 1.0}, 400, busy, SETTINGS).replica.replica_id == "x"  # all saturated: cost
    # A replica that runs at most 2 sequences at once is saturated with 2: a third would wait in its queue.
    small = replica("small", running=2)
    small.max_num_seqs = 2
    assert decide([small, replica("big", running=1)], {"small": 1.0}, 400, busy, SETTINGS).replica.replica_id == "big"


def test_a_pinned_session_stays_while_under_the_cap() -> None:
    pinned, other = replica("pinned", running=3), replica("other")
    decision = decide([pinned, other], {"other": 0.5}, 10, busy, SETTINGS, pinned="pinned")
    assert (decision.replica.replica_id, decision.reason) == ("pinned", "session")
    assert decide([other], {}, 10, busy, SETTINGS, pinned="gone").replica.replica_id == "other"


def test_cold_prompts_break_ties_alike_on_every_router_and_by_their_first_block() -> None:
    fleet = [replica(f"r{i}") for i in range(8)]
    first = {decide(fleet, {}, 10, busy, SETTINGS, tie_key=b"prompt-1").replica.replica_id for _ in range(5)}
    assert len(first) == 1 and decide(fleet, {}, 10, busy, SETTINGS).reason == "cold"
    spread = {decide(fleet, {}, 10, busy, SETTINGS, tie_key=f"prompt-{i}".encode()).replica.replica_id
              for i in range(64)}
    assert len(spread) >= 6  # different openings spread over the fleet
    # KV utilisation is a cost too.
    full, empty = replica("full", kv=0.95), replica("empty", kv=0.05)
    assert decide([full, empty], {}, 10, busy, SETTINGS).replica.replica_id == "empty"
