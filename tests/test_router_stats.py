"""What every dialect adds to its answers: the ``x-fleetgate-replica`` header, and the opt-in ``stats`` object.

Through a real router and sim replicas, with the official SDKs as clients:
- every answer, JSON or SSE, of Chat Completions, Completions, Messages and
  Responses names the replica that served it in ``x-fleetgate-replica``;
- a non-streaming answer carries ``stats`` (tokens_per_second,
  time_to_first_token, generation_time, prompt_tokens, completion_tokens,
  replica) when asked for by the ``x-fleetgate-stats: true`` header or the
  ``"fleetgate_stats": true`` body field, and no ``stats`` key otherwise. The SDK
  objects keep the unknown field (``model_extra``). Its token counts equal the
  answer's usage and its replica equals the header; its times are only checked
  for consistency (no timing assertions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from fleetgate.core.registry import REPLICA_KEY_PREFIX, ReplicaRecord
from messages_helpers import anthropic_client
from router_process import RouterProcess, router_cluster, sim_router  # noqa: F401

HELLO = [{"role": "user", "content": "hi"}]
REPLICA_HEADER = "x-fleetgate-replica"
BY_HEADER = {"extra_headers": {"x-fleetgate-stats": "true"}}
BY_FIELD = {"extra_body": {"fleetgate_stats": True}}
STATS_FIELDS = {
    "tokens_per_second",
    "time_to_first_token",
    "generation_time",
    "prompt_tokens",
    "completion_tokens",
    "replica",
}


def replicas_of(redis_url: str, model: str) -> set[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        records = [
            ReplicaRecord.model_validate_json(client.get(key)) for key in client.scan_iter(f"{REPLICA_KEY_PREFIX}*")
        ]
    finally:
        client.close()
    return {r.replica_id for r in records if r.model == model}


# Each dialect: a raw non-streaming call (SDK ``with_raw_response``), and (prompt, completion) tokens of its usage.
def _chat(router: RouterProcess, **extra: Any) -> Any:
    return router.openai().chat.completions.with_raw_response.create(model="rt-sim", messages=HELLO, **extra)


def _completions(router: RouterProcess, **extra: Any) -> Any:
    return router.openai().completions.with_raw_response.create(
        model="rt-sim", prompt="Once upon", max_tokens=8, **extra
    )


def _messages(router: RouterProcess, **extra: Any) -> Any:
    return anthropic_client(router).messages.with_raw_response.create(
        model="rt-sim", max_tokens=16, messages=HELLO, **extra
    )


def _responses(router: RouterProcess, **extra: Any) -> Any:
    return router.openai().responses.with_raw_response.create(model="rt-sim", input="hi", store=False, **extra)


def _openai_usage(answer: Any) -> tuple[int, int]:
    return answer.usage.prompt_tokens, answer.usage.completion_tokens


def _anthropic_usage(answer: Any) -> tuple[int, int]:
    usage = answer.usage
    return usage.input_tokens + (usage.cache_read_input_tokens or 0), usage.output_tokens


def _responses_usage(answer: Any) -> tuple[int, int]:
    return answer.usage.input_tokens, answer.usage.output_tokens


DIALECTS: dict[str, tuple[Callable[..., Any], Callable[[Any], tuple[int, int]]]] = {
    "chat": (_chat, _openai_usage),
    "completions": (_completions, _openai_usage),
    "messages": (_messages, _anthropic_usage),
    "responses": (_responses, _responses_usage),
}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("opt_in", [BY_HEADER, BY_FIELD], ids=["header", "body-field"])
def test_stats_on_request_match_the_usage_and_the_replica(
    sim_router: RouterProcess, dialect: str, opt_in: dict
) -> None:
    call, usage_of = DIALECTS[dialect]
    raw = call(sim_router, **opt_in)
    answer = raw.parse()
    stats = answer.model_extra["stats"]
    assert set(stats) == STATS_FIELDS
    assert (stats["prompt_tokens"], stats["completion_tokens"]) == usage_of(answer)
    assert stats["completion_tokens"] > 0
    assert stats["replica"] == raw.headers[REPLICA_HEADER]
    assert stats["replica"] in replicas_of(sim_router.redis_url, "rt-sim")
    assert stats["time_to_first_token"] > 0 and stats["generation_time"] >= 0
    if stats["generation_time"] > 0:
        assert stats["tokens_per_second"] == pytest.approx(stats["completion_tokens"] / stats["generation_time"])


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_stats_without_opting_in(sim_router: RouterProcess, dialect: str) -> None:
    call, _ = DIALECTS[dialect]
    raw = call(sim_router)
    assert "stats" not in raw.parse().model_extra and "stats" not in raw.http_response.json()
    assert raw.headers[REPLICA_HEADER] in replicas_of(sim_router.redis_url, "rt-sim")


STREAMS = {
    "/v1/chat/completions": {"messages": HELLO},
    "/v1/completions": {"prompt": "Once upon"},
    "/v1/messages": {"messages": HELLO, "max_tokens": 16},
    "/v1/responses": {"input": "hi", "store": False},
}


@pytest.mark.parametrize("path", STREAMS)
def test_streams_name_their_replica_and_carry_no_stats(sim_router: RouterProcess, path: str) -> None:
    body = {"model": "rt-sim", "stream": True, "fleetgate_stats": True, **STREAMS[path]}
    with httpx.stream("POST", f"{sim_router.base_url}{path}", json=body, timeout=30) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        replica = response.headers[REPLICA_HEADER]
        text = response.read().decode()
    assert replica in replicas_of(sim_router.redis_url, "rt-sim")
    assert '"stats"' not in text
