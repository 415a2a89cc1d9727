"""KV-cache-aware routing end to end: three sim replicas of one model, two routers, the official OpenAI SDK.

Coding-agent-shaped sessions (a long system prompt, the whole history resent
every turn, no session hint) keep every turn on the replica that holds their
prefix whichever router a turn reaches, also after a router restarted, and read
it from that replica's cache; a session hint pins a session whose prompt changes;
a replica saturated by one hot prefix spills to the others, and the routers say
so in ``fleetgate_routing_decisions_total``; the index's predictions are
published next to what the engines report.
"""

from __future__ import annotations

import collections
import concurrent.futures

import openai
import pytest

from router_process import ROUTER_CONFIG, RouterProcess, router_factory  # noqa: F401  (fixture)

MODEL = "rt-prefix"
REPLICAS = 3


@pytest.fixture()
def fleet(replica_factory, router_factory) -> list[RouterProcess]:
    for _ in range(REPLICAS):
        replica_factory(MODEL, config=ROUTER_CONFIG)
    routers = [router_factory(), router_factory()]
    for router in routers:
        router.wait_for_replicas(MODEL, REPLICAS)
    return routers


def system_prompt(session: int, rules: int = 300) -> str:
    return f"You are coding agent number {session}. " + " ".join(f"rule-{session}-{i}" for i in range(rules))


def ask(router: RouterProcess, messages: list[dict], max_tokens: int = 4) -> tuple[str, openai.types.CompletionUsage]:
    raw = router.openai().chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, max_tokens=max_tokens  # type: ignore[arg-type]
    )
    completion = raw.parse()
    assert completion.usage is not None
    return raw.headers["x-fleetgate-replica"], completion.usage


def test_each_sessions_turns_stay_on_one_replica_across_routers_and_read_its_cache(
    fleet: list[RouterProcess], router_factory
) -> None:
    served: dict[int, list[str]] = collections.defaultdict(list)
    later_cached: list[int] = []
    for turn in range(4):
        if turn == 2:  # a router restart loses nothing: what it chose by lives in Redis
            fleet[0].stop()
            fleet[0] = router_factory()
            fleet[0].wait_for_replicas(MODEL, REPLICAS)
        for session in range(6):
            history = [{"role": "system", "content": system_prompt(session)}]
            for earlier in range(turn + 1):
                history.append({"role": "user", "content": f"step {earlier} of session {session}: go on"})
                if earlier < turn:
                    history.append({"role": "assistant", "content": f"done with step {earlier}"})
            replica, usage = ask(fleet[(session + turn) % 2], history)  # alternate routers
            served[session].append(replica)
            if turn:
                assert usage.prompt_tokens_details is not None
                later_cached.append(usage.prompt_tokens_details.cached_tokens or 0)
    assert all(len(set(replicas)) == 1 for replicas in served.values()), served
    # Cold prompts still spread over the fleet (by rendezvous on random replica ids: with 6 more cold prompts,
    # 12 landing on one of 3 replicas by chance is 3 ** -11, where the 6 sessions alone were 1 in 243).
    firsts = {replicas[0] for replicas in served.values()}
    firsts |= {ask(fleet[cold % 2], [{"role": "user", "content": system_prompt(100 + cold)}])[0] for cold in range(6)}
    assert len(firsts) > 1
    assert all(cached > 300 for cached in later_cached), later_cached
    decisions = sum(r.metric("fleetgate_routing_decisions_total", model=MODEL, reason="hit") for r in fleet)
    assert decisions >= 12  # every later turn on the two routers running now was a hit


def test_a_session_hint_pins_a_session_whose_prompt_changes_from_its_start(fleet: list[RouterProcess]) -> None:
    replicas = set()
    for turn in range(4):
        client = fleet[turn % 2].openai()
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, max_tokens=4, messages=[{"role": "user", "content": system_prompt(turn)}],
            extra_headers={"x-session-id": "the-session"},
        )
        replicas.add(raw.headers["x-fleetgate-replica"])
    assert len(replicas) == 1
    assert sum(r.metric("fleetgate_routing_decisions_total", model=MODEL, reason="session") for r in fleet) == 3


def test_the_index_predicts_the_cached_tokens_the_engines_report(fleet: list[RouterProcess]) -> None:
    history = [{"role": "system", "content": system_prompt(99, rules=1500)}, {"role": "user", "content": "first"}]
    ask(fleet[0], history)
    replica, usage = ask(fleet[1], [*history, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "x"}])
    router = fleet[1]
    predicted = router.metric("fleetgate_prefix_predicted_cached_tokens_total", model=MODEL, replica=replica)
    actual = router.metric("fleetgate_router_replica_cached_tokens_total", model=MODEL, replica=replica)
    prompt = router.metric("fleetgate_router_replica_prompt_tokens_total", model=MODEL, replica=replica)
    assert usage.prompt_tokens_details is not None
    assert actual == usage.prompt_tokens_details.cached_tokens and prompt == usage.prompt_tokens
    # Off by less than one router block (1,024 bytes of the prompt's ~17,000: about 6 % of it).
    assert actual > 1400 and abs(predicted - actual) <= 0.06 * prompt


def test_a_hot_prefix_spills_when_its_replica_is_saturated(replica_factory, router_factory) -> None:
    for _ in range(REPLICAS):
        replica_factory(MODEL, config=ROUTER_CONFIG)
    router = router_factory(env={"FLEETGATE_ROUTER__PREFIX_ROUTING__MAX_EXTRA_LOAD": "1"})
    router.wait_for_replicas(MODEL, REPLICAS)
    hot = [{"role": "system", "content": system_prompt(7)}, {"role": "user", "content": "the same question"}]
    ask(router, hot)  # the prefix is now cached on one replica

    def long_ask(_: int) -> str:
        return ask(router, hot, max_tokens=16)[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        replicas = collections.Counter(pool.map(long_ask, range(12)))
    assert len(replicas) > 1, replicas  # not all twelve piled onto the replica holding the prefix
    assert router.metric("fleetgate_routing_decisions_total", model=MODEL, policy="prefix", reason="spill") > 0
    assert replicas.most_common(1)[0][1] < 12
