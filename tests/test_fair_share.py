"""Weighted fair share between API keys (router/admission/fair_share.py): the policy on its own, in the queue, and
through real routers, Redis and sim replicas.

The policy tests drive ``FairSharePolicy`` as the admission queue does (a waiter is popped, then ``start``
charges its key in advance; ``end`` corrects the charge to the tokens served) on a hand-moved clock: order
between keys and within one, weights, the lift of a key back from idle, ageing and forgetting, the advance and
its correction, and the heap against a brute-force reference under random operations.

The end-to-end tests run one sim replica with two slots (``max_num_seqs: 2``) behind two routers with auth on,
one with ``router.admission.policy: fair_share`` and one with ``fifo``: a heavy key fills both slots with long
streams and queues a backlog, then a light key sends one request. Under fair share the light request takes the
first slot that frees, before the heavy backlog (by the order of first tokens); under fifo it comes after all of
it. The waiting-by-key gauge counts the backlog under the heavy key's id. A third router (admission off) sends
requests of a key with a priority to a sim replica scheduling by priority: they overtake those queued before.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio as aioredis
import yaml

from fleetgate.core.config import AdmissionConfig, FairShareConfig
from fleetgate.core.registry import ReplicaRecord
from fleetgate.router import metrics
from fleetgate.router.admission import AdmissionQueue, FairSharePolicy, FifoPolicy, Waiter
from fleetgate.router.admission.fair_share import RENORMALISE_HALF_LIVES
from fleetgate.router.admission.policy import Advance
from fleetgate.router.auth import KeyStore
from fleetgate.router.key_policy import KeyPolicy
from replica_process import ReplicaProcess
from router_process import RouterProcess

HALF_LIFE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(clock: Clock | None = None, initial: int = 1000) -> FairSharePolicy:
    settings = FairShareConfig(half_life_seconds=HALF_LIFE, initial_estimate_tokens=initial)
    return FairSharePolicy(settings, clock or Clock())


_LOOP = asyncio.new_event_loop()  # the waiters' futures are never awaited here: the policy does not read them
_NAMES: dict[Waiter, str] = {}


def waiter(key_id: str, name: str = "", weight: float = 1.0) -> Waiter:
    """A waiter of ``key_id``; ``name`` tells waiters of one key apart."""
    made = Waiter(_LOOP.create_future(), key_id, key_id, weight)
    _NAMES[made] = name or key_id
    return made


def serve(fair: FairSharePolicy, tokens: int | None = None) -> str:
    """Pop the next waiter as the queue does and charge it; with ``tokens``, its request ends at once, served
    that many. Returns the waiter's name."""
    served = fair.pop()
    assert served is not None
    advance = fair.start(served.key_id, served.weight)
    if tokens is not None:
        fair.end(served.key_id, served.weight, advance, tokens)
    return _NAMES[served]


# --- the policy on its own -------------------------------------------------------------------------------------


def test_equal_keys_take_turns_and_each_key_is_served_in_arrival_order() -> None:
    fair = policy()
    for name in ("a1", "a2", "a3"):
        fair.push(waiter("a", name))
    for name in ("b1", "b2"):
        fair.push(waiter("b", name))
    assert len(fair) == 5
    assert [serve(fair, tokens=1000) for _ in range(5)] == ["a1", "b1", "a2", "b2", "a3"]
    assert fair.pop() is None and len(fair) == 0


def test_a_light_key_goes_before_a_heavy_keys_backlog() -> None:
    fifo, fair = FifoPolicy(), policy()
    for queue in (fifo, fair):
        for _ in range(2):  # the heavy key's two requests in flight (they took their slots at once)
            queue.start("heavy", 1.0)
        for index in range(10):
            queue.push(waiter("heavy", f"heavy-{index}"))
        queue.push(waiter("light"))
    assert serve(fair) == "light"  # level with the heavy key on arrival, and served longer ago
    assert [serve(fair) for _ in range(3)] == ["heavy-0", "heavy-1", "heavy-2"]
    assert [_NAMES[w] for w in iter(fifo.pop, None)][-1] == "light"  # FIFO: behind the whole backlog


def test_a_key_of_weight_two_gets_twice_the_tokens_of_a_key_of_weight_one() -> None:
    fair = policy()
    for index in range(60):
        fair.push(waiter("double", f"d{index}", weight=2.0))
        fair.push(waiter("single", f"s{index}", weight=1.0))
    served = [serve(fair, tokens=1000) for _ in range(45)]
    doubles = sum(name.startswith("d") for name in served)
    assert doubles in (29, 30, 31), served
    assert fair.served("double") == pytest.approx(fair.served("single"), abs=1000)


def test_a_key_back_from_idle_is_level_with_the_busiest_not_owed_its_idle_time() -> None:
    clock = Clock()
    fair = policy(clock)
    fair.push(waiter("b", "b-early"))
    assert serve(fair, tokens=1000) == "b-early"
    for index in range(20):  # b is away while a is served 20 requests
        fair.push(waiter("a", f"a{index}"))
        assert serve(fair, tokens=1000) == f"a{index}"
    for index in range(6):
        fair.push(waiter("a", f"a-more{index}"))
    for index in range(6):
        fair.push(waiter("b", f"b{index}"))
    assert fair.served("b") == pytest.approx(fair.served("a"))  # lifted from 1,000 to a's 20,000 (no credit)
    order = [serve(fair, tokens=1000) for _ in range(6)]
    assert order == ["b0", "a-more0", "b1", "a-more1", "b2", "a-more2"]  # turns, not six b's in a row


def test_usage_ages_with_the_half_life_so_recent_use_decides() -> None:
    clock = Clock()
    fair = policy(clock)
    fair.push(waiter("old"))
    serve(fair, tokens=100_000)
    assert fair.served("old") == pytest.approx(100_000)
    clock.now += HALF_LIFE
    assert fair.served("old") == pytest.approx(50_000)
    clock.now += 4 * HALF_LIFE  # old's 100k are worth 3,125 now
    fair.push(waiter("recent"))
    serve(fair, tokens=20_000)
    fair.push(waiter("old", "old-again"))  # nobody waits: no lift
    fair.push(waiter("recent", "recent-again"))  # above old's counter already: no lift either
    # Old's big use long ago weighs less than recent's smaller use just now (undecayed, 100k > 20k).
    assert fair.served("old") < fair.served("recent")
    assert serve(fair) == "old-again"


def test_idle_keys_are_forgotten_after_a_long_while_and_busy_ones_kept() -> None:
    clock = Clock()
    fair = policy(clock)
    for key in ("gone", "in-flight", "waiting"):
        fair.push(waiter(key))
        serve(fair, tokens=None if key == "in-flight" else 500)
    fair.push(waiter("waiting", "still-waiting"))
    assert fair.keys() == 3
    clock.now += (RENORMALISE_HALF_LIVES + 1) * HALF_LIFE
    fair.start("new", 1.0)  # any charge past the renormalisation point rescales and forgets
    assert fair.keys() == 3  # "gone" forgotten; "in-flight", "waiting" and "new" kept
    assert fair.served("gone") == 0.0
    assert serve(fair) == "still-waiting"


def test_a_request_is_charged_its_keys_running_mean_in_advance_and_corrected_at_the_end() -> None:
    clock = Clock()
    fair = policy(clock, initial=1000)
    first = fair.start("k", 1.0)
    assert first.tokens == 1000 and fair.served("k") == 1000  # a long stream counts while it runs
    clock.now += HALF_LIFE
    assert fair.served("k") == pytest.approx(500)
    fair.end("k", 1.0, first, 5000)
    assert fair.served("k") == pytest.approx(5000)  # what it was served (when it ended), not the advance
    second = fair.start("k", 1.0)
    assert second.tokens == pytest.approx(1000 + 0.2 * 4000)  # the key's running mean moved
    fair.end("k", 1.0, second, None)  # usage unknown: the advance stands
    assert fair.served("k") == pytest.approx(6800)
    third = fair.start("k", 2.0)
    assert third.tokens == pytest.approx(900)  # at weight 2, half
    fair.end("k", 2.0, third, 0)  # never reached an engine: refunded
    assert fair.served("k") == pytest.approx(6800)


def test_the_order_matches_a_brute_force_reference_under_random_operations() -> None:
    rng = random.Random(15)
    clock = Clock()
    fair = policy(clock)
    keys = [f"k{index}" for index in range(6)]
    weights = {key: rng.choice((0.5, 1.0, 3.0)) for key in keys}
    queued: list[Waiter] = []
    in_flight: list[tuple[str, Advance]] = []
    for step in range(3000):
        clock.now += rng.random() * 2
        action = rng.random()
        if action < 0.4:
            made = waiter(rng.choice(keys), f"w{step}")
            made.weight = weights[made.key_id]
            fair.push(made)
            queued.append(made)
        elif action < 0.7 and queued:
            candidates = {w.key_id: fair._keys[w.key_id] for w in queued}
            expected = min(candidates.values(), key=lambda k: (k.counter, k.served_at, k.arrival))
            expected_waiter = next(w for w in queued if w.key_id == expected.key_id)
            popped = fair.pop()
            assert popped is expected_waiter
            queued.remove(popped)
            in_flight.append((popped.key_id, fair.start(popped.key_id, popped.weight)))
        elif action < 0.8 and queued:
            leaving = rng.choice(queued)
            fair.remove(leaving)
            queued.remove(leaving)
        elif in_flight:
            key_id, advance = in_flight.pop(rng.randrange(len(in_flight)))
            fair.end(key_id, weights[key_id], advance, rng.choice((None, 0, rng.randint(1, 5000))))
        assert len(fair) == len(queued)
        assert len(fair._heap) <= 2 * len(keys) + 33  # stale entries are dropped, not hoarded


# --- in the admission queue ------------------------------------------------------------------------------------

MODEL = "fs-sim"


def record(max_num_seqs: int) -> ReplicaRecord:
    return ReplicaRecord(replica_id="r", model=MODEL, engine="sim", address="127.0.0.1:1", max_num_seqs=max_num_seqs)


def waiting_gauge(key_label: str) -> float:
    value = metrics.REGISTRY.get_sample_value("fleetgate_admission_waiting_by_key",
                                              {"model": MODEL, "key_id": key_label})
    return value or 0.0


@pytest.mark.parametrize("setting", ["fair_share", "fifo"])
def test_the_queue_serves_by_the_configured_policy_and_counts_waiters_per_key(setting: str) -> None:
    async def scenario() -> list[str]:
        queue = AdmissionQueue(AdmissionConfig(policy=setting), lambda model: [record(1)], recheck_seconds=60)
        held = await queue.admit(MODEL, MODEL, key_id="heavy", key_label=f"heavy-{setting}")
        assert held is not None
        order: list[str] = []

        async def wait(key: str) -> None:
            slot = await queue.admit(MODEL, MODEL, key_id=key, key_label=f"{key}-{setting}")
            assert slot is not None
            order.append(key)
            slot.release(tokens=500)

        tasks = [asyncio.create_task(wait("heavy")) for _ in range(3)]
        await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(wait("light")))
        await asyncio.sleep(0.01)
        assert (waiting_gauge(f"heavy-{setting}"), waiting_gauge(f"light-{setting}")) == (3, 1)
        held.release(tokens=4000)
        await asyncio.gather(*tasks)
        assert (waiting_gauge(f"heavy-{setting}"), waiting_gauge(f"light-{setting}")) == (0, 0)
        assert queue.in_flight(MODEL) == 0
        return order

    order = asyncio.run(scenario())
    assert order == (["light", "heavy", "heavy", "heavy"] if setting == "fair_share" else
                     ["heavy", "heavy", "heavy", "light"])


def test_fair_share_is_the_default_policy() -> None:
    assert AdmissionConfig().policy == "fair_share"
    queue = AdmissionQueue(AdmissionConfig(), lambda model: [record(1)])
    assert isinstance(queue._policy(), FairSharePolicy)


# --- through real routers, Redis and sim replicas ----------------------------------------------------------------

PRIORITY_MODEL = "prio-sim"
ITL_MS = 30
BLOCKER_TOKENS = (60, 80)  # the heavy key's two running streams: the first slot frees after ~1.8 s
BACKLOG_TOKENS = 20  # each queued heavy request holds its slot ~0.6 s
BACKLOG = 4
CONFIG = {
    "redis": {"url": None},
    "replica": {"heartbeat_seconds": 0.5, "registry_ttl_seconds": 2.0},
    "router": {"auth": True, "registry_refresh_seconds": 0.2,
               "admission": {"max_queued": 16, "max_wait_seconds": 60}},
    "models": [
        {"name": MODEL, "engine": "sim",
         "sim": {"ttft_ms": 10, "itl_ms": ITL_MS, "output_tokens": max(BLOCKER_TOKENS), "max_num_seqs": 2}},
        {"name": PRIORITY_MODEL, "engine": "sim",
         "sim": {"ttft_ms": 10, "itl_ms": ITL_MS, "output_tokens": max(BLOCKER_TOKENS), "max_num_seqs": 1,
                 "scheduling_policy": "priority"}},
    ],
}
POLICY_ENV = "FLEETGATE_ROUTER__ADMISSION__POLICY"


class Cluster:
    def __init__(self, routers: dict[str, RouterProcess], secrets: dict[str, str], key_ids: dict[str, str]) -> None:
        self.routers = routers
        self.secrets = secrets
        self.key_ids = key_ids


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("fair-share")
    config = logs / "fair-share.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    made = asyncio.run(_create_keys(redis_server.url, {"fs-heavy": 0, "fs-light": 0, "fs-urgent": -5}))
    secrets = {name: secret for name, (secret, _) in made.items()}
    key_ids = {name: key_id for name, (_, key_id) in made.items()}
    replicas = [ReplicaProcess(config, model, redis_server.url, log_path=logs / f"{model}.log")
                for model in (MODEL, PRIORITY_MODEL)]
    routers = {
        "fair_share": RouterProcess(config, redis_server.url, log_path=logs / "router-fair.log"),
        "fifo": RouterProcess(config, redis_server.url, env={POLICY_ENV: "fifo"}, log_path=logs / "router-fifo.log"),
        "no_admission": RouterProcess(config, redis_server.url, env={"FLEETGATE_ROUTER__ADMISSION__ENABLED": "false"},
                                      log_path=logs / "router-open.log"),
    }
    try:
        for replica in replicas:
            replica.start()
        for router in routers.values():
            router.start()
            router.wait_for_replicas(MODEL, 1)
            router.wait_for_replicas(PRIORITY_MODEL, 1)
        yield Cluster(routers, secrets, key_ids)
    finally:
        for router in routers.values():
            router.stop()
        for replica in replicas:
            replica.stop()


async def _create_keys(redis_url: str, priorities: dict[str, int]) -> dict[str, tuple[str, str]]:
    """Keys named as ``priorities`` says, with those priorities: name -> (secret, key id)."""
    client = aioredis.from_url(redis_url)
    store = KeyStore(client)
    made = {}
    try:
        for name, priority in priorities.items():
            secret, info = await store.create(name)
            if priority:
                await store.set_policy(info.id, KeyPolicy(priority=priority))
            made[name] = (secret, info.id)
    finally:
        await client.aclose()
    return made


async def first_token_at(client: httpx.AsyncClient, secret: str, model: str, tokens: int) -> float:
    """When the first content of a streamed chat answer of ``tokens`` tokens arrived (the stream then read out)."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens, "stream": True}
    first = None
    async with client.stream("POST", "/v1/chat/completions", json=body,
                             headers={"authorization": f"Bearer {secret}"}) as answer:
        assert answer.status_code == 200, await answer.aread()
        async for line in answer.aiter_lines():
            if first is None and '"content":"' in line:
                first = time.monotonic()
    assert first is not None
    return first


async def wait_for(router: RouterProcess, name: str, value: float, timeout: float = 10.0, **labels: str) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await asyncio.to_thread(router.metric, name, **labels)) != value:
        assert time.monotonic() < deadline, f"{name}{labels} stays {seen}, expected {value}"
        await asyncio.sleep(0.02)


def heavy_backlog_then_light(cluster: Cluster, setting: str) -> tuple[list[float], float]:
    """The first-token times of the heavy key's queued backlog and of the light key's one request."""
    router = cluster.routers[setting]
    heavy, light = cluster.secrets["fs-heavy"], cluster.secrets["fs-light"]

    async def scenario() -> tuple[list[float], float]:
        async with httpx.AsyncClient(base_url=router.base_url, timeout=60) as client:
            blockers = []
            for in_flight, tokens in enumerate(BLOCKER_TOKENS, start=1):
                blockers.append(asyncio.create_task(first_token_at(client, heavy, MODEL, tokens)))
                await wait_for(router, "fleetgate_admission_in_flight", in_flight, model=MODEL)
            backlog = []
            for depth in range(1, BACKLOG + 1):
                backlog.append(asyncio.create_task(first_token_at(client, heavy, MODEL, BACKLOG_TOKENS)))
                await wait_for(router, "fleetgate_admission_queue_depth", depth, model=MODEL)
            await wait_for(router, "fleetgate_admission_waiting_by_key", BACKLOG, model=MODEL,
                           key_id=cluster.key_ids["fs-heavy"])
            light_call = asyncio.create_task(first_token_at(client, light, MODEL, 2))
            await wait_for(router, "fleetgate_admission_waiting_by_key", 1, model=MODEL,
                           key_id=cluster.key_ids["fs-light"])
            light_first = await light_call
            backlog_firsts = list(await asyncio.gather(*backlog))
            await asyncio.gather(*blockers)
            await wait_for(router, "fleetgate_admission_in_flight", 0, model=MODEL)
            await wait_for(router, "fleetgate_admission_waiting_by_key", 0, model=MODEL,
                           key_id=cluster.key_ids["fs-heavy"])
            return backlog_firsts, light_first

    return asyncio.run(scenario())


def test_fair_share_admits_a_light_keys_request_ahead_of_a_heavy_keys_backlog(cluster: Cluster) -> None:
    backlog_firsts, light_first = heavy_backlog_then_light(cluster, "fair_share")
    assert light_first < min(backlog_firsts)  # the first slot that freed was the light key's


def test_fifo_serves_the_light_keys_request_after_the_whole_backlog(cluster: Cluster) -> None:
    backlog_firsts, light_first = heavy_backlog_then_light(cluster, "fifo")
    assert light_first > max(backlog_firsts)


def test_a_keys_priority_reaches_a_sim_scheduling_by_priority(cluster: Cluster) -> None:
    router = cluster.routers["no_admission"]  # every request goes straight to the engine, which queues them
    plain, urgent = cluster.secrets["fs-light"], cluster.secrets["fs-urgent"]

    async def scenario() -> tuple[float, float]:
        async with httpx.AsyncClient(base_url=router.base_url, timeout=60) as client:
            blocker = asyncio.create_task(first_token_at(client, plain, PRIORITY_MODEL, BLOCKER_TOKENS[0]))
            await asyncio.sleep(0.5)  # the blocker runs; what comes next waits in the engine
            queued_first = asyncio.create_task(first_token_at(client, plain, PRIORITY_MODEL, 2))
            await asyncio.sleep(0.3)
            urgent_call = asyncio.create_task(first_token_at(client, urgent, PRIORITY_MODEL, 2))
            plain_at, urgent_at, _ = await asyncio.gather(queued_first, urgent_call, blocker)
            return plain_at, urgent_at

    plain_at, urgent_at = asyncio.run(scenario())
    assert urgent_at < plain_at  # priority -5 overtook the priority-0 request queued before it

