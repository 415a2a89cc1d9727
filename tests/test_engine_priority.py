"""A request's priority in the engines: the sim's waiting queue under ``scheduling_policy`` priority and fcfs
(the real ``SimEngine`` in asyncio, as tests/test_sim_batching.py drives it), and the priority argument the vLLM
replica hands ``AsyncLLM.add_request`` (a pure function; no vLLM engine runs).

The sim runs one sequence at a time (``max_num_seqs: 1``): a blocker holds the slot while requests of different
priorities queue, and the order of their first tokens is the order the scheduler admitted them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fleetgate.core.config import ModelConfig, SimConfig
from fleetgate.replicas.sim_engine import SimEngine
from fleetgate.replicas.vllm_engine.priority import engine_priority, schedules_by_priority
from fleetgate.v1 import replica_pb2 as pb


def sim_engine(**sim: Any) -> SimEngine:
    return SimEngine(ModelConfig(name="sim", engine="sim", sim=SimConfig(**sim)), "sim-0")


def request(request_id: str, priority: int = 0) -> pb.GenerateRequest:
    return pb.GenerateRequest(request_id=request_id, model="sim", raw_prompt=f"{request_id} words", priority=priority)


async def first_text_order(policy: str, queued: list[tuple[str, int]]) -> list[str]:
    """The ids of ``queued`` (id, priority) in the order their first tokens came, queued behind a blocker."""
    engine = sim_engine(max_num_seqs=1, ttft_ms=0, itl_ms=20, output_tokens=4, scheduling_policy=policy)
    firsts: list[str] = []

    async def run(generate: pb.GenerateRequest) -> None:
        async for event in engine.generate(generate):
            if event.HasField("text") and generate.request_id not in firsts:
                firsts.append(generate.request_id)

    blocker = asyncio.create_task(run(request("blocker", priority=100)))
    while engine.load().running == 0:
        await asyncio.sleep(0.001)
    tasks = []
    for request_id, priority in queued:
        tasks.append(asyncio.create_task(run(request(request_id, priority))))
        deadline = time.perf_counter() + 5
        while engine.load().waiting < len(tasks):  # queued in this order
            assert time.perf_counter() < deadline
            await asyncio.sleep(0.001)
    await asyncio.gather(blocker, *tasks)
    assert (engine.load().running, engine.load().waiting) == (0, 0)
    return firsts[1:]


QUEUED = [("late-0", 0), ("urgent", -5), ("background", 10), ("late-0b", 0), ("urgent-b", -5)]


async def test_priority_policy_admits_waiting_sequences_by_priority_then_arrival() -> None:
    # The running blocker (priority 100) is not preempted; the waiting ones go lowest priority first, ties in order.
    assert await first_text_order("priority", QUEUED) == ["urgent", "urgent-b", "late-0", "late-0b", "background"]


async def test_fcfs_policy_ignores_the_priority() -> None:
    assert await first_text_order("fcfs", QUEUED) == [request_id for request_id, _ in QUEUED]


def test_the_default_sim_policy_is_fcfs() -> None:
    assert SimConfig().scheduling_policy == "fcfs"


@pytest.mark.parametrize(
    ("engine_args", "priority", "passed"),
    [
        ({"scheduling_policy": "priority"}, -3, -3),
        ({"scheduling_policy": "priority", "max_num_seqs": 8}, 7, 7),
        ({"scheduling_policy": "priority"}, 0, 0),
        ({"scheduling_policy": "fcfs"}, -3, 0),  # vLLM refuses a nonzero priority under fcfs: 0 is passed
        ({}, 5, 0),  # vLLM's default policy is fcfs
    ],
)
def test_vllm_gets_the_priority_only_under_its_priority_scheduler(
    engine_args: dict[str, Any], priority: int, passed: int
) -> None:
    assert engine_priority(engine_args, priority) == passed
    assert schedules_by_priority(engine_args) == (engine_args.get("scheduling_policy") == "priority")
