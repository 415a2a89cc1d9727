"""Anthropic Messages end to end: the official ``anthropic`` SDK → a router process → sim replicas over gRPC.

Models come from tests/configs/router-sim.yaml (``router_cluster`` keeps rt-sim,
rt-echo, rt-reasoning and rt-vision running). Each test checks what an Anthropic
client sees: exact event sequences, stop reasons, usage that adds up, tool round
trips, and errors in Anthropic's shape with the right status.
"""

from __future__ import annotations

import anthropic
import httpx
import pytest

from messages_helpers import anthropic_client, shape, stream_message, whole_prompt, without_ids
from replica_process import ReplicaProcess
from router_process import ROUTER_CONFIG, RouterProcess, router_cluster, router_factory, sim_router  # noqa: F401

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME_TOOL = {
    "name": "get_time",
    "description": "Current time in a timezone",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}
HELLO = [{"role": "user", "content": "Say hello"}]
# temperature is no longer a keyword of this SDK's create(); clients send it as an extra body field.
GREEDY = {"temperature": 0}


def test_text_message_non_streaming_and_streaming_agree(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    params = {"model": "rt-sim", "max_tokens": 64, "messages": HELLO, "extra_body": GREEDY}
    message = client.messages.create(**params)
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == "rt-sim"
    assert [block.type for block in message.content] == ["text"] and message.content[0].text
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)

    events, streamed = stream_message(client, **params)
    assert shape(events) == [
        "message_start", "content_block_start:text", "content_block_delta:text_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    start = events[0]
    assert start.message.id == streamed.id and start.message.stop_reason is None and start.message.content == []
    assert start.message.usage.input_tokens == message.usage.input_tokens
    assert [e.index for e in events if e.type.startswith("content_block")] == [0] * (len(events) - 3)
    assert without_ids(streamed) == without_ids(message)
    usage = message.usage
    assert usage.input_tokens > 0 and usage.output_tokens == 8
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 0)


def test_thinking_blocks_from_a_reasoning_model(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    params = {
        "model": "rt-reasoning",
        "max_tokens": 64,
        "messages": HELLO,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    events, streamed = stream_message(client, **params)
    assert shape(events) == [
        "message_start",
        "content_block_start:thinking", "content_block_delta:thinking_delta", "content_block_delta:signature_delta",
        "content_block_stop",
        "content_block_start:text", "content_block_delta:text_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    thinking, text = streamed.content
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature.startswith("fg1:")
    assert text.type == "text" and text.text
    block_indexes = [(e.type, e.index) for e in events if e.type in ("content_block_start", "content_block_stop")]
    assert block_indexes == [
        ("content_block_start", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
    ]

    message = client.messages.create(**params)
    assert without_ids(message) == without_ids(streamed)
    assert message.usage.output_tokens == streamed.usage.output_tokens > len(text.text.split())

    # Thinking in the history is accepted (with our signature or any other) and replayed.
    follow_up = client.messages.create(
        model="rt-reasoning", max_tokens=64, thinking={"type": "disabled"},
        messages=[*HELLO, {"role": "assistant", "content": message.content}, {"role": "user", "content": "Again"}],
    )
    assert [block.type for block in follow_up.content] == ["text"]


def test_tool_use_round_trip(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    call = client.messages.create(model="rt-sim", max_tokens=64, messages=ask, tools=[WEATHER_TOOL, TIME_TOOL],
                                  tool_choice={"type": "any"})
    assert call.stop_reason == "tool_use"
    [tool_use] = call.content
    assert tool_use.type == "tool_use" and tool_use.id.startswith("toolu_")
    assert tool_use.name in ("get_weather", "get_time") and isinstance(tool_use.input, dict) and tool_use.input

    history = [*ask, {"role": "assistant", "content": call.content}, {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_use.id, "content": [{"type": "text", "text": "Sunny, 21 C"}]}]}]
    answer = client.messages.create(model="rt-sim", max_tokens=64, messages=history, tools=[WEATHER_TOOL, TIME_TOOL])
    assert answer.stop_reason == "end_turn" and [b.type for b in answer.content] == ["text"]
    # The whole prompt grew, and the replica's prefix cache served the first turn's full blocks of it.
    assert whole_prompt(answer.usage) > whole_prompt(call.usage)
    assert call.usage.cache_read_input_tokens == 0 and answer.usage.cache_read_input_tokens

    failed = [*history[:2], {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": tool_use.id, "content": "city not found", "is_error": True}]}]
    assert (
        client.messages.create(model="rt-sim", max_tokens=64, messages=failed, tools=[WEATHER_TOOL]).stop_reason
        == "end_turn"
    )


def test_named_tool_streams_as_one_tool_use_block(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    params = {
        "model": "rt-sim",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Time in Tokyo?"}],
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": {"type": "tool", "name": "get_time", "disable_parallel_tool_use": True},
    }
    events, streamed = stream_message(client, **params)
    assert shape(events) == [
        "message_start", "content_block_start:tool_use", "content_block_delta:input_json_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    assert events[1].content_block.input == {} and events[1].content_block.id.startswith("toolu_")
    [tool_use] = streamed.content
    assert tool_use.name == "get_time" and set(tool_use.input) == {"tz"}
    assert streamed.stop_reason == "tool_use"
    assert without_ids(client.messages.create(**params)) == without_ids(streamed)


def test_stop_sequence_and_max_tokens(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    echo = [{"role": "user", "content": "alpha beta STOP gamma delta"}]
    stopped = client.messages.create(model="rt-echo", max_tokens=32, messages=echo, stop_sequences=["never", "STOP"])
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "STOP")
    assert stopped.content[0].text.strip() == "alpha beta"
    _, streamed = stream_message(client, model="rt-echo", max_tokens=32, messages=echo, stop_sequences=["STOP"])
    assert (streamed.stop_reason, streamed.stop_sequence, streamed.content[0].text) == (
        "stop_sequence", "STOP", stopped.content[0].text)

    cut = client.messages.create(model="rt-sim", max_tokens=3, messages=HELLO)
    assert (cut.stop_reason, cut.stop_sequence, cut.usage.output_tokens) == ("max_tokens", None, 3)
    _, cut_streamed = stream_message(client, model="rt-sim", max_tokens=3, messages=HELLO)
    assert (cut_streamed.stop_reason, cut_streamed.usage.output_tokens) == ("max_tokens", 3)


def test_count_tokens_equals_the_input_tokens_of_the_same_request(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    request = {
        "model": "rt-sim",
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "Sunny"}]},
        ],
        "tools": [WEATHER_TOOL],
    }
    counted = client.messages.count_tokens(**request).input_tokens
    events, streamed = stream_message(client, max_tokens=16, **request)
    assert counted == events[0].message.usage.input_tokens == whole_prompt(streamed.usage)
    assert counted == whole_prompt(client.messages.create(max_tokens=16, **request).usage)
    assert counted > client.messages.count_tokens(model="rt-sim", messages=HELLO).input_tokens


def test_headers_beta_query_and_unknown_fields_are_accepted(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    beta = client.beta.messages.create(
        model="rt-sim",
        max_tokens=8,
        messages=HELLO,
        betas=["interleaved-thinking-2025-05-14"],
        metadata={"user_id": "u-1"},
        extra_body={"service_tier": "auto", "top_k": 5},
    )
    assert beta.stop_reason in ("end_turn", "max_tokens") and beta.content[0].type == "text"
    raw = httpx.post(f"{sim_router.base_url}/v1/messages?beta=true", headers={"anthropic-version": "2023-06-01"},
                     json={"model": "rt-sim", "max_tokens": 8, "messages": HELLO, "some_future_field": {"x": 1}})
    assert raw.status_code == 200 and raw.json()["type"] == "message"


def test_images_reach_a_vision_model_and_are_refused_by_others(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
               {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
               {"type": "text", "text": "Describe"}]
    seen = client.messages.create(model="rt-vision", max_tokens=8, messages=[{"role": "user", "content": content}])
    assert seen.content[0].type == "text"
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="rt-sim", max_tokens=8, messages=[{"role": "user", "content": content}])
    assert refused.value.body["error"]["type"] == "invalid_request_error"


# ---------------------------------------------------------------- errors


def _error(exc: pytest.ExceptionInfo[anthropic.APIStatusError]) -> tuple[int, str]:
    body = exc.value.body
    assert body["type"] == "error" and isinstance(body["error"]["message"], str) and body["error"]["message"]
    return exc.value.status_code, body["error"]["type"]


def test_request_errors_have_anthropic_shape_and_status(sim_router: RouterProcess):
    client = anthropic_client(sim_router)
    url = f"{sim_router.base_url}/v1/messages"
    missing = httpx.post(url, json={"model": "rt-sim", "messages": HELLO})
    assert missing.status_code == 400
    assert missing.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }

    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(model="no-such-model", max_tokens=8, messages=HELLO)
    assert _error(unknown) == (404, "not_found_error")

    with pytest.raises(anthropic.APIStatusError) as too_large:
        client.messages.create(model="rt-sim", max_tokens=8, messages=[{"role": "user", "content": "x" * 70_000}])
    assert _error(too_large) == (413, "request_too_large")

    with pytest.raises(anthropic.APIStatusError) as absent:
        client.messages.create(model="rt-absent", max_tokens=8, messages=HELLO)
    assert _error(absent) == (503, "overloaded_error")
    assert absent.value.response.headers["retry-after"] == "3"

    with pytest.raises(anthropic.BadRequestError) as over_context:
        client.messages.create(model="rt-echo", max_tokens=8, messages=[{"role": "user", "content": "word " * 100}])
    assert _error(over_context) == (400, "invalid_request_error")
    assert "context" in over_context.value.body["error"]["message"]

    with pytest.raises(anthropic.BadRequestError) as bad_choice:
        client.messages.create(model="rt-sim", max_tokens=8, messages=HELLO, tools=[WEATHER_TOOL],
                               tool_choice={"type": "tool", "name": "get_time"})
    assert _error(bad_choice) == (400, "invalid_request_error")

    with pytest.raises(anthropic.BadRequestError) as counted_unknown_block:
        client.messages.count_tokens(
            model="rt-sim", messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}]
        )
    assert _error(counted_unknown_block) == (400, "invalid_request_error")

    with pytest.raises(anthropic.NotFoundError) as counted_unknown_model:
        client.messages.count_tokens(model="no-such-model", messages=HELLO)
    assert _error(counted_unknown_model) == (404, "not_found_error")


def test_api_keys_by_x_api_key_or_bearer(router_factory, sim_router: RouterProcess):
    secret = "sk-fg-messages-test-key-0123456789abcdef"
    router = router_factory(env={"FLEETGATE_ROUTER__AUTH": "true", "FLEETGATE_BOOTSTRAP_KEY": secret})
    router.wait_for_replicas("rt-sim", 1)
    with pytest.raises(anthropic.AuthenticationError) as wrong:
        anthropic_client(router, api_key="sk-fg-wrong").messages.create(model="rt-sim", max_tokens=8, messages=HELLO)
    assert _error(wrong) == (401, "authentication_error")
    missing = httpx.post(f"{router.base_url}/v1/messages/count_tokens", json={"model": "rt-sim", "messages": HELLO})
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"

    assert (
        anthropic_client(router, api_key=secret).messages.create(model="rt-sim", max_tokens=8, messages=HELLO).content
    )
    bearer = anthropic.Anthropic(base_url=router.base_url, auth_token=secret, max_retries=0)
    assert bearer.messages.count_tokens(model="rt-sim", messages=HELLO).input_tokens > 0


# ---------------------------------------------------------------- slow first token, failures mid-stream


def test_ping_while_the_first_token_is_slow(router_factory, replica_factory):
    replica_factory("rt-late", config=ROUTER_CONFIG)
    router = router_factory(env={"FLEETGATE_ROUTER__PING_INTERVAL_SECONDS": "0.2"})
    router.wait_for_replicas("rt-late", 1)
    with httpx.stream("POST", f"{router.base_url}/v1/messages", timeout=30.0,
                      json={"model": "rt-late", "max_tokens": 4, "stream": True, "messages": HELLO}) as response:
        names = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    first_block = names.index("content_block_start")
    assert names[0] == "message_start" and "ping" in names[1:first_block]
    assert "ping" not in names[first_block:]
    assert names[-2:] == ["message_delta", "message_stop"]


def test_replica_dying_mid_stream_is_an_error_event(replica_factory, sim_router: RouterProcess):
    replica: ReplicaProcess = replica_factory("rt-slow", config=ROUTER_CONFIG)
    sim_router.wait_for_replicas("rt-slow", 1)
    client = anthropic_client(sim_router)
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as failed:
        with client.messages.stream(model="rt-slow", max_tokens=500, messages=HELLO) as stream:
            for event in stream:
                seen.append(event.type)
                if event.type == "content_block_delta" and replica.alive:
                    replica.kill()
    assert seen[:2] == ["message_start", "content_block_start"] and "message_stop" not in seen
    assert failed.value.body["type"] == "error" and failed.value.body["error"]["type"] == "api_error"
