"""Redis down under a router with auth on: every dialect answers a clear 503 in its own error shape, then recovers.

The test runs its own redis-server (stopping the session's would disturb the
other tests), a sim replica and a router on it. While Redis is stopped, the key
lookup of every request fails: OpenAI routes answer
``{"error": {"type": "server_error", "code": "state_store_unavailable", ...}}``,
``/v1/messages`` Anthropic's ``{"type": "error", "error": {"type": "overloaded_error", ...}}``,
both 503 with ``Retry-After``, never a 500. Redis keeps its data (append-only
file), so after the restart the same key works again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import redis.asyncio as aioredis

from conftest import RedisServer
from fleetgate.router.auth import KeyStore
from messages_helpers import anthropic_client
from replica_process import ReplicaProcess
from router_process import ROUTER_CONFIG, RouterProcess

HELLO = [{"role": "user", "content": "hi"}]
UNAVAILABLE = "shared state store unavailable, retry"
RETRY_AFTER = "3"  # tests/configs/router-sim.yaml


def _create_key(redis_url: str) -> str:
    async def create() -> str:
        client = aioredis.from_url(redis_url)
        try:
            secret, _ = await KeyStore(client).create("outage")
        finally:
            await client.aclose()
        return secret

    return asyncio.run(create())


@pytest.fixture()
def outage_cluster(tmp_path: Path):
    """(redis server, replica, router with auth on, API key): everything on a Redis of its own."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    server.start()
    replica = ReplicaProcess(ROUTER_CONFIG, "rt-sim", server.url, log_path=tmp_path / "replica.log")
    router = RouterProcess(ROUTER_CONFIG, server.url, env={"FLEETGATE_ROUTER__AUTH": "true"},
                           log_path=tmp_path / "router.log")
    try:
        replica.start()
        router.start()
        router.wait_for_replicas("rt-sim", 1)
        yield server, replica, router, _create_key(server.url)
    finally:
        router.stop()
        replica.stop()
        server.stop()


def _chat(router: RouterProcess, key: str) -> str:
    return router.openai(key).chat.completions.create(model="rt-sim", messages=HELLO).choices[0].message.content or ""


def _message(router: RouterProcess, key: str) -> str:
    reply = anthropic_client(router, key).messages.create(model="rt-sim", max_tokens=8, messages=HELLO)
    return "".join(block.text for block in reply.content if block.type == "text")


def test_redis_down_is_503_in_each_dialect_shape_then_recovers(outage_cluster) -> None:
    server, replica, router, key = outage_cluster
    assert _chat(router, key) and _message(router, key)

    server.stop()
    headers = {"authorization": f"Bearer {key}"}
    chat = httpx.post(f"{router.base_url}/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": "rt-sim", "messages": HELLO})
    assert (chat.status_code, chat.headers["retry-after"]) == (503, RETRY_AFTER)
    assert chat.json() == {"error": {"message": UNAVAILABLE, "type": "server_error", "param": None,
                                     "code": "state_store_unavailable"}}
    messages = httpx.post(f"{router.base_url}/v1/messages", headers={"x-api-key": key}, timeout=30,
                          json={"model": "rt-sim", "max_tokens": 8, "messages": HELLO})
    assert (messages.status_code, messages.headers["retry-after"]) == (503, RETRY_AFTER)
    assert messages.json() == {"type": "error", "error": {"type": "overloaded_error", "message": UNAVAILABLE}}
    # The same through the SDKs (their retries off), streaming included, and on the other routes.
    with pytest.raises(openai.APIStatusError) as caught:
        router.openai(key).chat.completions.create(model="rt-sim", messages=HELLO, stream=True)
    assert caught.value.status_code == 503
    with pytest.raises(anthropic.APIStatusError) as refused:
        anthropic_client(router, key).messages.create(model="rt-sim", max_tokens=8, messages=HELLO)
    assert refused.value.status_code == 503 and refused.value.body["error"]["type"] == "overloaded_error"
    for response in (
        httpx.get(f"{router.base_url}/v1/models", headers=headers),
        httpx.post(f"{router.base_url}/v1/responses", headers=headers, json={"model": "rt-sim", "input": "x"}),
        httpx.post(
            f"{router.base_url}/v1/messages/count_tokens",
            headers={"x-api-key": key},
            json={"model": "rt-sim", "messages": HELLO},
        ),
    ):
        assert response.status_code == 503 and UNAVAILABLE in response.text
    assert router.metric("fleetgate_requests_in_flight", model="rt-sim", dialect="chat") == 0

    server.start()
    replica.wait_registered(timeout=30)
    router.wait_for_replicas("rt-sim", 1)
    assert _chat(router, key) and _message(router, key)


def test_redis_down_under_rate_limits_is_503_then_recovers(outage_cluster, tmp_path: Path) -> None:
    """Auth off, a default limit: the rate-limit window is the first thing in Redis a request needs."""
    server, replica, _, _ = outage_cluster
    limited = RouterProcess(ROUTER_CONFIG, server.url, env={"FLEETGATE_ROUTER__RATE_LIMIT_REQUESTS_PER_MINUTE": "100"},
                            log_path=tmp_path / "limited-router.log")
    with limited:
        limited.wait_for_replicas("rt-sim", 1)
        answer = limited.openai().chat.completions.with_raw_response.create(model="rt-sim", messages=HELLO)
        assert answer.headers["x-ratelimit-limit-requests"] == "100"

        server.stop()
        with pytest.raises(openai.APIStatusError) as caught:
            limited.openai().chat.completions.create(model="rt-sim", messages=HELLO)
        assert (caught.value.status_code, caught.value.response.headers["retry-after"]) == (503, RETRY_AFTER)
        assert caught.value.body["code"] == "state_store_unavailable"

        server.start()
        replica.wait_registered(timeout=30)
        limited.wait_for_replicas("rt-sim", 1)
        answer = limited.openai().chat.completions.with_raw_response.create(model="rt-sim", messages=HELLO)
        assert answer.headers["x-ratelimit-remaining-requests"] == "98"
