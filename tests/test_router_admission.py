"""Admission control (router/admission/): the queue on its own, then through a real router and sim replicas.

The unit tests drive ``AdmissionQueue`` with fake registry records (capacity from
``max_num_seqs``, FIFO grants, the queue bound, the maximum wait, a client that
leaves, a replica that joins). The router tests run one router and two sim
replicas of a slow model with ``max_num_seqs: 1`` (two slots) and a queue of two,
on loopback: an overload is shed with 429 (Chat, Responses) and 529 (Messages)
with Retry-After and recovers to 200s; queued requests are served in order; a
client that disconnects while queued frees its place; the metrics move.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest
import yaml

from fleetgate.core.config import AdmissionConfig
from fleetgate.core.registry import ReplicaRecord
from fleetgate.router.admission import AdmissionQueue, ClientLeft, Shed, ShedReason
from fleetgate.router.admission.capacity import model_slots
from replica_process import ReplicaProcess
from router_process import RouterProcess

MODEL = "adm-sim"


def record(replica_id: str, max_num_seqs: int = 0) -> ReplicaRecord:
    return ReplicaRecord(replica_id=replica_id, model=MODEL, engine="sim", address="127.0.0.1:1",
                         max_num_seqs=max_num_seqs)


def make_queue(records: list[ReplicaRecord], **settings: object) -> AdmissionQueue:
    return AdmissionQueue(AdmissionConfig.model_validate(settings), lambda model: records, recheck_seconds=0.05)


# --- the queue on its own ---------------------------------------------------------------------------------------


def test_capacity_is_the_replicas_max_num_seqs_times_the_factor_or_the_override() -> None:
    records = [record("a", 4), record("b", 3), record("c")]  # c publishes none: default_max_num_seqs
    assert model_slots(records, AdmissionConfig(default_max_num_seqs=2)) == 4 + 3 + 2
    assert model_slots(records, AdmissionConfig(default_max_num_seqs=2, in_flight_factor=1.5)) == 6 + 5 + 3
    assert model_slots(records, AdmissionConfig(max_in_flight_per_replica=7)) == 21
    assert model_slots([], AdmissionConfig()) == 0


def test_waiters_get_freed_slots_first_come_first_served_and_a_slot_is_released_once() -> None:
    async def scenario() -> None:
        queue = make_queue([record("a", 1), record("b", 1)], max_queued=3)
        first, second = await queue.admit(MODEL, MODEL), await queue.admit(MODEL, MODEL)
        assert first is not None and second is not None and queue.in_flight(MODEL) == 2
        served: list[str] = []

        async def wait(name: str) -> None:
            slot = await queue.admit(MODEL, MODEL)
            served.append(name)
            assert slot is not None
            await asyncio.sleep(0)

        waiters = []
        for name in ("x", "y", "z"):
            waiters.append(asyncio.create_task(wait(name)))
            await asyncio.sleep(0)
        assert queue.waiting(MODEL) == 3 and served == []
        with pytest.raises(Shed) as shed:
            await queue.admit(MODEL, MODEL)
        assert shed.value.reason is ShedReason.QUEUE_FULL
        first.release()
        first.release()  # a second release frees nothing more
        await asyncio.sleep(0.01)
        assert served == ["x"] and queue.in_flight(MODEL) == 2 and queue.waiting(MODEL) == 2
        second.release()
        await asyncio.sleep(0.01)
        assert served == ["x", "y"]
        for task in waiters[2:]:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert queue.waiting(MODEL) == 0

    asyncio.run(scenario())


def test_a_waiter_past_the_maximum_wait_is_shed_and_leaves_the_queue() -> None:
    async def scenario() -> None:
        queue = make_queue([record("a", 1)], max_wait_seconds=0.1)
        held = await queue.admit(MODEL, MODEL)
        started = time.monotonic()
        with pytest.raises(Shed) as shed:
            await queue.admit(MODEL, MODEL)
        assert shed.value.reason is ShedReason.WAIT_TIMEOUT
        assert 0.1 <= time.monotonic() - started < 1.0
        assert queue.waiting(MODEL) == 0 and queue.in_flight(MODEL) == 1
        assert held is not None
        held.release()
        assert queue.in_flight(MODEL) == 0

    asyncio.run(scenario())


def test_a_client_that_leaves_while_queued_leaves_at_once_and_takes_no_slot() -> None:
    async def scenario() -> None:
        queue = make_queue([record("a", 1)])
        held = await queue.admit(MODEL, MODEL)
        gone = asyncio.Event()
        leaving = asyncio.create_task(queue.admit(MODEL, MODEL, until_gone=gone.wait))
        after = asyncio.create_task(queue.admit(MODEL, MODEL))
        await asyncio.sleep(0.01)
        assert queue.waiting(MODEL) == 2
        gone.set()
        with pytest.raises(ClientLeft):
            await leaving
        assert queue.waiting(MODEL) == 1
        assert held is not None
        held.release()
        slot = await asyncio.wait_for(after, 1.0)
        assert slot is not None and queue.in_flight(MODEL) == 1 and queue.waiting(MODEL) == 0

    asyncio.run(scenario())


def test_a_replica_that_joins_admits_waiters_first_and_no_replica_means_no_admission() -> None:
    async def scenario() -> None:
        records = [record("a", 1)]
        queue = make_queue(records)
        assert await queue.admit(MODEL, MODEL) is not None
        waiting = asyncio.create_task(queue.admit(MODEL, MODEL))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        records.append(record("b", 1))  # no release: the waiter's periodic look finds the new slot
        assert await asyncio.wait_for(waiting, 1.0) is not None
        records.clear()
        assert await queue.admit(MODEL, MODEL) is None  # no healthy replica: the replica choice answers 503
        assert await make_queue([record("a", 1)], enabled=False).admit(MODEL, MODEL) is None

    asyncio.run(scenario())


def test_a_request_arriving_after_a_replica_joined_lets_those_already_waiting_go_first() -> None:
    async def scenario() -> None:
        records = [record("a", 1)]
        queue = AdmissionQueue(AdmissionConfig(), lambda model: records, recheck_seconds=60)  # no periodic look
        assert await queue.admit(MODEL, MODEL) is not None
        waiting = asyncio.create_task(queue.admit(MODEL, MODEL))
        await asyncio.sleep(0.01)
        records.append(record("b", 1))
        newcomer = asyncio.create_task(queue.admit(MODEL, MODEL))
        assert await asyncio.wait_for(waiting, 1.0) is not None
        assert not newcomer.done() and queue.waiting(MODEL) == 1 and queue.in_flight(MODEL) == 2
        newcomer.cancel()
        await asyncio.gather(newcomer, return_exceptions=True)
        assert queue.waiting(MODEL) == 0

    asyncio.run(scenario())


def test_a_thousand_waiters_cost_a_few_kilobytes_each_and_all_leave_when_their_clients_go() -> None:
    async def scenario() -> None:
        queue = make_queue([record("a", 1)], max_queued=1000, max_wait_seconds=60)
        assert await queue.admit(MODEL, MODEL) is not None
        gone = asyncio.Event()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            waiters = [asyncio.create_task(queue.admit(MODEL, MODEL, until_gone=gone.wait)) for _ in range(1000)]
            await asyncio.sleep(0.05)
            per_waiter = (tracemalloc.get_traced_memory()[0] - before) / 1000
        finally:
            tracemalloc.stop()
        assert queue.waiting(MODEL) == 1000
        # The waiting coroutine and its task, the future, the disconnect watch, the queue entry (~4.3 KB).
        assert per_waiter < 8 * 1024
        with pytest.raises(Shed):
            await queue.admit(MODEL, MODEL)
        gone.set()
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(outcome, ClientLeft) for outcome in outcomes)
        assert queue.waiting(MODEL) == 0 and queue.in_flight(MODEL) == 1

    asyncio.run(scenario())


# --- through a real router and sim replicas ---------------------------------------------------------------------

ITL_SECONDS = 0.03
# The blockers' lengths: the first slot frees after ~3 s, the second after ~6 s (loaded CI machines pace
# tokens late, never early); a short answer takes a few tokens.
BLOCKER_TOKENS = (100, 200)
SHORT_TOKENS = 2
CONFIG = {
    "redis": {"url": None},
    "replica": {"heartbeat_seconds": 0.5, "registry_ttl_seconds": 2.0},
    "router": {
        "auth": False, "registry_refresh_seconds": 0.2,
        # The less loaded of the two replicas (both sampled): a freed slot's request goes to the replica that freed it.
        "routing_policy": "power_of_two",
        "admission": {"max_queued": 2, "max_wait_seconds": 30, "retry_after_seconds": 2},
    },
    "models": [{"name": MODEL, "engine": "sim",
                "sim": {"ttft_ms": 20, "itl_ms": ITL_SECONDS * 1000, "output_tokens": max(BLOCKER_TOKENS),
                        "max_num_seqs": 1}}],
}
HELLO = [{"role": "user", "content": "hi"}]


def body(dialect: str, tokens: int = SHORT_TOKENS) -> tuple[str, dict[str, object]]:
    """The path and body of a request of ``dialect`` answering ``tokens`` tokens."""
    if dialect == "chat":
        return "/v1/chat/completions", {"model": MODEL, "messages": HELLO, "max_tokens": tokens}
    if dialect == "responses":
        return "/v1/responses", {"model": MODEL, "input": "hi", "store": False, "max_output_tokens": max(tokens, 16)}
    return "/v1/messages", {"model": MODEL, "max_tokens": tokens, "messages": HELLO}


DIALECTS = ("chat", "responses", "messages")


@pytest.fixture(scope="module")
def admission_router(redis_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    """Two sim replicas of MODEL (one sequence each: two slots) and a router queueing two more."""
    logs = tmp_path_factory.mktemp("admission")
    config = logs / "admission.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    replicas = [ReplicaProcess(config, MODEL, redis_server.url, log_path=logs / f"replica-{i}.log") for i in range(2)]
    router = RouterProcess(config, redis_server.url, log_path=logs / "router.log")
    try:
        for replica in replicas:
            replica.start()
        router.start()
        router.wait_for_replicas(MODEL, 2)
        yield router
    finally:
        router.stop()
        for replica in replicas:
            replica.stop()


def gauge(router: RouterProcess, name: str, **labels: str) -> float:
    return router.metric(name, model=MODEL, **labels)


async def wait_for_gauge(router: RouterProcess, name: str, value: float, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await asyncio.to_thread(gauge, router, name)) != value:
        assert time.monotonic() < deadline, f"{name} stays {seen}, expected {value}"
        await asyncio.sleep(0.02)


async def post(client: httpx.AsyncClient, dialect: str, tokens: int = SHORT_TOKENS) -> httpx.Response:
    path, payload = body(dialect, tokens)
    return await client.post(path, json=payload)


async def fill(router: RouterProcess, client: httpx.AsyncClient, queued: int) -> list[asyncio.Task[httpx.Response]]:
    """Both slots taken (the first freed ~3 s before the second), then ``queued`` short chat requests waiting,
    in order."""
    calls = []
    for in_flight, tokens in enumerate(BLOCKER_TOKENS, start=1):
        calls.append(asyncio.create_task(post(client, "chat", tokens)))
        await wait_for_gauge(router, "fleetgate_admission_in_flight", in_flight)
    for depth in range(1, queued + 1):
        calls.append(asyncio.create_task(post(client, "chat")))
        await wait_for_gauge(router, "fleetgate_admission_queue_depth", depth)
    return calls


def test_overload_sheds_429_and_529_with_retry_after_then_recovers(admission_router: RouterProcess) -> None:
    router = admission_router
    shed_before = gauge(router, "fleetgate_admission_shed_total", reason="queue_full")
    waits_before = gauge(router, "fleetgate_admission_wait_seconds_count")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=router.base_url, timeout=30) as client:
            accepted = await fill(router, client, queued=2)
            shed = {dialect: await post(client, dialect) for dialect in DIALECTS}
            for dialect, answer in shed.items():
                assert answer.status_code == (529 if dialect == "messages" else 429), (dialect, answer.text)
                assert answer.headers["retry-after"] == "2"
            for dialect in ("chat", "responses"):
                error = shed[dialect].json()["error"]
                assert (error["type"], error["code"]) == ("overloaded_error", "overloaded")
                assert "overloaded" in error["message"]
            assert shed["messages"].json() == {
                "type": "error", "error": {"type": "overloaded_error", "message": shed["messages"].json()["error"]
                                           ["message"]}}
            assert gauge(router, "fleetgate_admission_shed_total", reason="queue_full") == shed_before + 3
            assert [answer.status_code for answer in await asyncio.gather(*accepted)] == [200] * 4
            await wait_for_gauge(router, "fleetgate_admission_in_flight", 0)
            recovered = await asyncio.gather(*(post(client, dialect) for dialect in DIALECTS))
            assert [answer.status_code for answer in recovered] == [200, 200, 200]

    asyncio.run(scenario())
    assert gauge(router, "fleetgate_admission_wait_seconds_count") == waits_before + 7
    assert gauge(router, "fleetgate_admission_queue_depth") == 0


def test_queued_requests_are_served_in_arrival_order(admission_router: RouterProcess) -> None:
    router = admission_router

    async def scenario() -> list[float]:
        async with httpx.AsyncClient(base_url=router.base_url, timeout=30) as client:
            calls = await fill(router, client, queued=2)
            return list(await asyncio.gather(*(_finished_at(call) for call in calls)))

    async def _finished_at(call: asyncio.Task[httpx.Response]) -> float:
        answer = await call
        assert answer.status_code == 200
        return time.monotonic()

    blocker_a, blocker_b, first, second = asyncio.run(scenario())
    # The first queued call takes the slot the shorter blocker frees, the second the one the first frees in turn,
    # both before the longer blocker ends.
    assert blocker_a < first < second < blocker_b


def test_a_client_disconnecting_while_queued_frees_its_place(admission_router: RouterProcess) -> None:
    router = admission_router
    left_before = gauge(router, "fleetgate_admission_left_total")
    requests_before = router.metric("fleetgate_requests_total", model=MODEL, status="200")

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=router.base_url, timeout=30) as client:
            calls = await fill(router, client, queued=1)
            reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
            path, payload_body = body("chat")
            payload = httpx.Request("POST", f"{router.base_url}{path}", json=payload_body)
            head = "".join(f"{k}: {v}\r\n" for k, v in payload.headers.items())
            writer.write(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + payload.read())
            await writer.drain()
            await wait_for_gauge(router, "fleetgate_admission_queue_depth", 2)
            writer.close()
            await wait_for_gauge(router, "fleetgate_admission_left_total", left_before + 1, timeout=2.0)
            # At once: both blockers still run, the first queued call still waits.
            assert gauge(router, "fleetgate_admission_queue_depth") == 1
            assert gauge(router, "fleetgate_admission_in_flight") == 2
            # Its place is free: another request queues behind the first and is served.
            calls.append(asyncio.create_task(post(client, "chat")))
            await wait_for_gauge(router, "fleetgate_admission_queue_depth", 2)
            assert [answer.status_code for answer in await asyncio.gather(*calls)] == [200] * 4
            await wait_for_gauge(router, "fleetgate_admission_in_flight", 0)

    asyncio.run(scenario())
    assert gauge(router, "fleetgate_admission_left_total") == left_before + 1
    assert router.metric("fleetgate_requests_total", model=MODEL, status="200") == requests_before + 4
