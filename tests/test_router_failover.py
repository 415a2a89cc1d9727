"""Routing under failure, through real router and replica processes.

- A replica killed (SIGKILL) after accepting a request but before its first
  token: the request still succeeds, on the other replica (one retry counted),
  which the ``x-fleetgate-replica`` header names, streamed or not.
- A replica that dies after its first tokens: no retry; the stream ends with an
  OpenAI error chunk and ``[DONE]``, a non-streaming call with a 500.
- A replica frozen mid-stream (SIGSTOP: its host stops answering, no connection
  is closed): the router's keepalive pings notice, and the stream ends with an
  error chunk instead of waiting forever.
- A client that leaves mid-stream (or gives up on a non-streaming call): the gRPC
  call is cancelled and the replica's in-flight count returns to zero.
- Two router processes on one Redis serve the same replicas.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import openai
import pytest

from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc
from replica_process import ReplicaProcess
from router_process import ROUTER_CONFIG, RouterProcess, router_cluster, router_factory, sim_router  # noqa: F401

HELLO = [{"role": "user", "content": "hi"}]


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met after {timeout}s")


def replica_running(replica: ReplicaProcess) -> int:
    """Requests running in the replica's engine, from its Info RPC."""
    with grpc.insecure_channel(replica.address) as channel:
        return replica_pb2_grpc.ReplicaStub(channel).Info(pb.InfoRequest(), timeout=5).load.running


def in_flight_on(router: RouterProcess, model: str, replicas: list[ReplicaProcess]) -> ReplicaProcess | None:
    for replica in replicas:
        if router.metric("fleetgate_router_replica_in_flight", model=model, replica=replica.replica_id) >= 1:
            return replica
    return None


@pytest.mark.parametrize("stream", [False, True])
def test_replica_killed_before_first_token_request_succeeds_on_another(
    router_factory, replica_factory, stream: bool  # noqa: F811
) -> None:
    replicas = [replica_factory("rt-late", config=ROUTER_CONFIG) for _ in range(2)]
    router = router_factory()
    router.wait_for_replicas("rt-late", 2)
    retries_before = router.metric("fleetgate_retries_total", model="rt-late")

    def ask() -> tuple[str, str]:
        """The answer, and the replica the x-fleetgate-replica header names."""
        completions = router.openai().chat.completions
        if not stream:
            raw = completions.with_raw_response.create(model="rt-late", messages=HELLO)
            return raw.parse().choices[0].message.content, raw.headers["x-fleetgate-replica"]
        with completions.with_streaming_response.create(model="rt-late", messages=HELLO, stream=True) as raw:
            chunks = list(raw.parse())
            replica = raw.headers["x-fleetgate-replica"]
        assert len({c.id for c in chunks}) == 1
        assert chunks[-1].choices[0].finish_reason == "stop"
        return "".join(c.choices[0].delta.content or "" for c in chunks), replica

    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(ask)
        wait_until(lambda: in_flight_on(router, "rt-late", replicas) is not None, what="request in flight")
        victim = in_flight_on(router, "rt-late", replicas)
        assert victim is not None
        # The router counts the call before the replica has it: wait until the replica runs it.
        wait_until(lambda: replica_running(victim) == 1, what="request running on the replica")
        victim.kill()
        text, served_by = answer.result(timeout=60)
    survivor = next(r for r in replicas if r is not victim)
    # The retry happened before the response started: the header names the replica that answered.
    assert (text, served_by) == ("Lorem ipsum dolor sit", survivor.replica_id)
    assert router.metric("fleetgate_retries_total", model="rt-late") == retries_before + 1
    assert router.metric("fleetgate_router_replica_in_flight", model="rt-late", replica=survivor.replica_id) == 0


def test_replica_dying_mid_stream_is_an_error_chunk_then_done(router_factory, replica_factory) -> None:  # noqa: F811
    for _ in range(3):
        replica_factory("rt-dies", config=ROUTER_CONFIG)
    router = router_factory()
    router.wait_for_replicas("rt-dies", 3)
    body = {"model": "rt-dies", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{router.base_url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2].removeprefix("data: "))
    assert set(error) == {"error"} and error["error"]["type"] == "server_error"
    assert "failed mid-stream" in error["error"]["message"]
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-2]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Lorem ipsum dolor"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert router.metric("fleetgate_retries_total", model="rt-dies") == 0

    router.wait_for_replicas("rt-dies", 2)
    with pytest.raises(openai.APIError, match="failed mid-stream"):
        list(router.openai().chat.completions.create(model="rt-dies", messages=HELLO, stream=True))

    router.wait_for_replicas("rt-dies", 1)
    with pytest.raises(openai.InternalServerError) as caught:
        router.openai().chat.completions.create(model="rt-dies", messages=HELLO)
    assert caught.value.response.json()["error"]["type"] == "server_error"
    assert router.metric("fleetgate_errors_total", model="rt-dies", dialect="chat", type="api_error") == 3


def test_replica_frozen_mid_stream_is_noticed_by_keepalive(router_factory, replica_factory) -> None:  # noqa: F811
    replica = replica_factory("rt-slow", config=ROUTER_CONFIG)
    router = router_factory()
    router.wait_for_replicas("rt-slow", 1)
    assert replica.proc is not None
    body = {"model": "rt-slow", "messages": HELLO, "stream": True}
    lines: list[str] = []
    try:
        # Without keepalive the router would wait for the frozen replica forever, and the client's read time out.
        with httpx.stream("POST", f"{router.base_url}/v1/chat/completions", json=body, timeout=60) as response:
            for line in response.iter_lines():
                lines.append(line)
                if len(lines) == 6:
                    os.kill(replica.proc.pid, signal.SIGSTOP)
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    data = [line for line in lines if line]
    assert data[-1] == "data: [DONE]"
    error = json.loads(data[-2].removeprefix("data: "))["error"]
    assert error["type"] == "server_error" and "failed mid-stream" in error["message"]


def test_client_leaving_mid_stream_aborts_the_replica_request(router_factory, replica_factory) -> None:  # noqa: F811
    replica = replica_factory("rt-slow", config=ROUTER_CONFIG)
    router = router_factory()
    router.wait_for_replicas("rt-slow", 1)
    body = {"model": "rt-slow", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{router.base_url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        content_chunks = 0
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                content_chunks += 1
            if content_chunks == 3:
                assert replica_running(replica) == 1
                break
    # The connection is closed: the router cancels the call and the replica aborts it.
    wait_until(lambda: replica_running(replica) == 0, what="replica in-flight back to zero")
    wait_until(
        lambda: router.metric("fleetgate_router_replica_in_flight", model="rt-slow", replica=replica.replica_id) == 0,
        what="router in-flight back to zero",
    )
    assert router.metric("fleetgate_requests_total", model="rt-slow", dialect="chat", stream="true", status="499") == 1
    assert router.metric("fleetgate_requests_in_flight", model="rt-slow", dialect="chat") == 0


def test_client_giving_up_on_non_streaming_call_aborts_it(router_factory, replica_factory) -> None:  # noqa: F811
    replica = replica_factory("rt-slow", config=ROUTER_CONFIG)
    router = router_factory()
    router.wait_for_replicas("rt-slow", 1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{router.base_url}/v1/chat/completions", json={"model": "rt-slow", "messages": HELLO}, timeout=1.5)
    wait_until(lambda: replica_running(replica) == 0, what="replica in-flight back to zero")
    wait_until(
        lambda: (
            router.metric("fleetgate_requests_total", model="rt-slow", dialect="chat", stream="false", status="499")
            == 1
        ),
        what="request recorded as client-closed",
    )


def test_two_routers_on_one_redis_serve_the_same_replicas(router_factory, router_cluster: RouterProcess) -> None:  # noqa: F811
    routers = [router_cluster, router_factory()]
    for router in routers:
        router.wait_for_replicas("rt-sim", 1)
    answers = [
        r.openai().chat.completions.create(model="rt-echo", messages=[{"role": "user", "content": "same replicas"}])
        for r in routers
    ]
    assert [a.choices[0].message.content for a in answers] == ["same replicas", "same replicas"]
    listed = [{m.id for m in r.openai().models.list()} for r in routers]
    assert listed[0] == listed[1]
