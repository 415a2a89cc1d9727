"""Faults under load, through real router, replica and redis-server processes (issue 14's chaos tests in CI).

- A replica SIGKILLed under 32 concurrent streams (3 replicas, one router; the streams in three dialects,
  started 40 ms apart so that some are mid-stream and some still wait for their first token, routed by
  load): no request
  fails before its first token (those are retried on another replica), every stream the kill cuts ends
  with its dialect's error event (an OpenAI error chunk, Anthropic's ``error`` event, Responses' ``error``
  then ``response.failed``), the replica process started again under its id registers again, and the
  router's in-flight count for it is back to 0.
- redis-server SIGKILLed twice with stored Responses: after each restart (AOF), every stored response
  reads back the same.

Each test writes what it measured (requests, faults, failures by kind, recovery times) to
``fault_figures.json`` in pytest's base temp dir and prints it; the README's Reliability section quotes it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conftest import RedisServer
from fleetgate.core.local_processes import wait_until
from replica_process import ReplicaProcess
from router_process import ROUTER_CONFIG, RouterProcess
from sse_frames import data_payloads, named_events

MODEL = "fault-sim"
REPLICAS = 3
STREAMS = 32
START_SPACING_SECONDS = 0.04
# A first token after 0.8 s, then 40 tokens 40 ms apart: at the kill (1.2 s after the first start) the first
# ~10 streams are mid-stream and the next ~20 still wait for their first token (the last 2 start after it).
FAULT_MODEL = {"name": MODEL, "engine": "sim", "sim": {"ttft_ms": 800, "itl_ms": 40, "output_tokens": 40}}
KILL_AFTER_SECONDS = 1.2
DIALECTS = ("chat", "messages", "responses")


@pytest.fixture()
def fault_config(tmp_path: Path) -> Path:
    """tests/configs/router-sim.yaml plus FAULT_MODEL, routed by load (power of two choices)."""
    config = yaml.safe_load(ROUTER_CONFIG.read_text())
    config["models"].append(FAULT_MODEL)
    config["router"]["routing_policy"] = "power_of_two"
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture()
def figures(tmp_path_factory: pytest.TempPathFactory):
    """A dict the test fills; merged into fault_figures.json under the test's name."""
    measured: dict[str, Any] = {}
    yield measured
    out = tmp_path_factory.getbasetemp() / "fault_figures.json"
    merged = json.loads(out.read_text()) if out.exists() else {}
    merged.update(measured)
    out.write_text(json.dumps(merged, indent=1))
    print(f"\nfault figures ({out}): {json.dumps(measured)}")


# -- one stream -------------------------------------------------------------------------------------------

@dataclass
class StreamOutcome:
    dialect: str
    status: int = 0
    replica: str = ""
    tokens: int = 0
    completed: bool = False
    error_event: bool = False
    error_at: float = 0.0  # monotonic time the error event arrived
    events: list[Any] = field(default_factory=list)


def request(dialect: str, index: int) -> tuple[str, dict[str, Any]]:
    text = f"stream {index}: tell me something"
    if dialect == "chat":
        return "/v1/chat/completions", {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": text}]}
    if dialect == "messages":
        return "/v1/messages", {"model": MODEL, "stream": True, "max_tokens": 64,
                                "messages": [{"role": "user", "content": text}]}
    return "/v1/responses", {"model": MODEL, "stream": True, "input": text, "store": False}


def read_frame(dialect: str, frame: bytes, outcome: StreamOutcome) -> None:
    """Count a content token, a normal end or the dialect's error event in one SSE frame."""
    if dialect == "chat":
        for payload in data_payloads(frame + b"\n\n"):
            if "error" in payload:
                outcome.error_event = True
            elif payload["choices"] and payload["choices"][0]["delta"].get("content"):
                outcome.tokens += 1
            elif payload["choices"] and payload["choices"][0]["finish_reason"]:
                outcome.completed = True
        return
    for name, payload in named_events(frame + b"\n\n"):
        outcome.events.append(name)
        if name == "error":
            outcome.error_event = outcome.error_event or dialect == "messages" or payload.get("type") == "error"
        elif name in ("content_block_delta", "response.output_text.delta"):
            outcome.tokens += 1
        elif name in ("message_stop", "response.completed"):
            outcome.completed = True


async def stream(client: httpx.AsyncClient, dialect: str, index: int) -> StreamOutcome:
    path, body = request(dialect, index)
    outcome = StreamOutcome(dialect)
    async with client.stream("POST", path, json=body) as response:
        outcome.status, outcome.replica = response.status_code, response.headers.get("x-fleetgate-replica", "")
        buffer = b""
        async for chunk in response.aiter_bytes():
            buffer += chunk
            *complete, buffer = buffer.split(b"\n\n")
            for frame in complete:
                if frame:
                    had_error = outcome.error_event
                    read_frame(dialect, frame, outcome)
                    if outcome.error_event and not had_error:
                        outcome.error_at = time.monotonic()
    if dialect == "responses" and outcome.error_event:
        assert outcome.events[-2:] == ["error", "response.failed"], outcome.events[-4:]
    return outcome


async def streams_with_a_kill(router: RouterProcess, replicas: list[ReplicaProcess]) -> tuple[
        list[StreamOutcome], ReplicaProcess, float]:
    """STREAMS streams started START_SPACING_SECONDS apart; KILL_AFTER_SECONDS after the first (while the last
    ones are still being started), the first replica is SIGKILLed. The outcomes,
    the victim and when it was killed."""
    limits = httpx.Limits(max_connections=STREAMS, max_keepalive_connections=STREAMS)

    victim = replicas[0]  # load-balanced by power of two: each replica has about a third of the streams

    async def kill_victim(at: float) -> float:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        killed_at = time.monotonic()
        await asyncio.to_thread(victim.kill)
        return killed_at

    async with httpx.AsyncClient(base_url=router.base_url, timeout=60, limits=limits) as client:
        # The kill runs beside the starts: streams started in the 0.8 s before it still wait for a first token.
        kill = asyncio.create_task(kill_victim(time.monotonic() + KILL_AFTER_SECONDS))
        tasks = []
        for index in range(STREAMS):
            tasks.append(asyncio.create_task(stream(client, DIALECTS[index % len(DIALECTS)], index)))
            await asyncio.sleep(START_SPACING_SECONDS)
        killed_at = await kill
        return list(await asyncio.gather(*tasks)), victim, killed_at


def timed_wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``condition()`` holds (polled every 50 ms)."""
    start = time.monotonic()
    wait_until(condition, what=what, timeout=timeout, interval=0.05)
    return time.monotonic() - start


# -- the tests ----------------------------------------------------------------------------------------------

def test_replica_sigkilled_under_32_streams(fault_config: Path, redis_server: RedisServer, tmp_path: Path,
                                             figures: dict[str, Any]) -> None:
    replicas = [ReplicaProcess(fault_config, MODEL, redis_server.url, log_path=tmp_path / f"replica-{i}.log")
                for i in range(REPLICAS)]
    router = RouterProcess(fault_config, redis_server.url, log_path=tmp_path / "router.log")
    restarted: ReplicaProcess | None = None
    try:
        for replica in replicas:
            replica.start()
        router.start()
        router.wait_for_replicas(MODEL, REPLICAS)
        retries_before = router.metric("fleetgate_retries_total", model=MODEL)

        outcomes, victim, killed_at = asyncio.run(streams_with_a_kill(router, replicas))
        retries = router.metric("fleetgate_retries_total", model=MODEL) - retries_before

        kinds = Counter(
            "completed" if o.completed and not o.error_event and o.status == 200
            else "cut mid-stream, error event" if o.error_event and o.tokens > 0 and not o.completed
            else f"failed before the first token (status {o.status}, {o.tokens} tokens, error {o.error_event})"
            for o in outcomes
        )
        assert set(kinds) <= {"completed", "cut mid-stream, error event"}, kinds
        cut = [o for o in outcomes if o.error_event]
        assert cut, "the kill cut no stream: nothing was tested"
        assert retries >= 1, "no request waiting for its first token on the victim: nothing was retried"
        # A completed stream was served by a survivor: a retry names the replica that answered.
        assert all(o.replica != victim.replica_id for o in outcomes if o.completed)
        detected = timed_wait(lambda: router.metric("fleetgate_healthy_replicas", model=MODEL) == REPLICAS - 1,
                              timeout=30, what="router drops the killed replica")

        restarted = ReplicaProcess(fault_config, MODEL, redis_server.url, replica_id=victim.replica_id,
                                   log_path=tmp_path / "replica-restarted.log")
        restart_started = time.monotonic()
        restarted.start()
        router.wait_for_replicas(MODEL, REPLICAS)
        back = time.monotonic() - restart_started
        assert router.metric("fleetgate_router_replica_in_flight", model=MODEL, replica=victim.replica_id) == 0
        answer = router.openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        assert answer.choices[0].finish_reason == "stop"

        figures["replica_sigkill"] = {
            "streams": STREAMS, "replicas": REPLICAS, "faults_injected": 1, "outcomes": dict(kinds),
            "retried_before_first_token": retries, "by_dialect_cut": dict(Counter(o.dialect for o in cut)),
            "error_event_after_kill_ms_max": round(1000 * max(o.error_at - killed_at for o in cut), 1),
            "router_dropped_replica_after_s": round(detected, 2),
            "restarted_replica_registered_and_routed_after_s": round(back, 2),
        }
    finally:
        router.stop()
        for replica in [*replicas, *([restarted] if restarted else [])]:
            replica.stop()


def test_redis_sigkilled_twice_keeps_the_stored_responses(fault_config: Path, tmp_path: Path,
                                                          figures: dict[str, Any]) -> None:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    server.start()
    replica = ReplicaProcess(fault_config, "rt-sim", server.url, log_path=tmp_path / "replica.log")
    router = RouterProcess(fault_config, server.url, log_path=tmp_path / "router.log")
    try:
        replica.start()
        router.start()
        router.wait_for_replicas("rt-sim", 1)
        stored = {}
        for index in range(8):
            created = httpx.post(f"{router.base_url}/v1/responses", timeout=30,
                                 json={"model": "rt-sim", "input": f"keep {index}", "store": True}).json()
            stored[created["id"]] = created["output"]
        recoveries: list[float] = []
        statuses: Counter[int] = Counter()
        outputs: dict[str, Any] = {}  # of the stored responses, as read back after a kill

        def read(response_id: str) -> Any:
            """The stored response's output, or None while it cannot be read (statuses counted)."""
            try:
                answer = httpx.get(f"{router.base_url}/v1/responses/{response_id}", timeout=5)
            except httpx.HTTPError:
                statuses[0] += 1
                return None
            statuses[answer.status_code] += 1
            return answer.json()["output"] if answer.status_code == 200 else None

        for _ in range(2):
            assert server.proc is not None
            server.proc.kill()
            server.proc.wait(timeout=10)
            killed = time.monotonic()
            server.start()

            outputs.clear()

            def all_read() -> bool:
                for response_id in stored.keys() - outputs.keys():
                    if (output := read(response_id)) is not None:
                        outputs[response_id] = output
                return len(outputs) == len(stored)

            timed_wait(all_read, timeout=30, what="stored responses readable")
            recoveries.append(round(time.monotonic() - killed, 2))
            assert outputs == stored
        figures["redis_sigkill"] = {"stored_responses": len(stored), "faults_injected": 2, "lost": 0,
                                    "readable_again_after_kill_s": recoveries,
                                    "reads_after_kills_by_status": dict(statuses)}
    finally:
        router.stop()
        replica.stop()
        server.stop()
