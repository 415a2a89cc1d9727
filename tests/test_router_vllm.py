"""Chat Completions against real vLLM on CPU (the bundled SmolLM2-135M), through a router process, with the openai SDK.

Uses the session's ``vllm_replica`` (registered in the same Redis as the router
cluster, so the router serves ``smollm2-135m`` beside the sim models). Greedy
decoding (temperature 0) makes streaming and non-streaming comparable.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import VLLM_MODEL
from router_process import RouterProcess, router_cluster, sim_router  # noqa: F401

CAPITAL = [
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
GREEDY = {"temperature": 0, "max_tokens": 32}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture()
def router(vllm_replica, sim_router: RouterProcess) -> RouterProcess:  # noqa: F811
    sim_router.wait_for_replicas(VLLM_MODEL, 1, timeout=120)
    return sim_router


def test_vllm_non_streaming_and_streaming_agree(router: RouterProcess) -> None:
    client = router.openai()
    completion = client.chat.completions.create(model=VLLM_MODEL, messages=CAPITAL, **GREEDY)
    answer = completion.choices[0].message.content
    assert "Paris" in answer
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert 0 < completion.usage.completion_tokens <= 32

    chunks = list(client.chat.completions.create(model=VLLM_MODEL, messages=CAPITAL, stream=True, **GREEDY))
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answer
    assert chunks[-1].choices[0].finish_reason == completion.choices[0].finish_reason


def test_vllm_include_usage_equals_non_streaming_usage(router: RouterProcess) -> None:
    client = router.openai()
    request = {"model": VLLM_MODEL, "messages": [{"role": "user", "content": "Name three colors."}], **GREEDY}
    client.chat.completions.create(**request)  # warm the prefix cache, so both measured calls see the same hits
    plain = client.chat.completions.create(**request)
    chunks = list(client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens


def test_vllm_tool_round_trip_with_required(router: RouterProcess) -> None:
    client = router.openai()
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model=VLLM_MODEL, messages=messages, tools=[WEATHER_TOOL], tool_choice="required", temperature=0, max_tokens=64
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append(
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": "Paris", "weather": "sunny, 21 C"})}
    )
    second = client.chat.completions.create(
        model=VLLM_MODEL, messages=messages, tools=[WEATHER_TOOL], tool_choice="none", temperature=0, max_tokens=48
    )
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].message.content.strip()


def test_vllm_streamed_required_tool_call(router: RouterProcess) -> None:
    chunks = list(
        router.openai().chat.completions.create(
            model=VLLM_MODEL, messages=[{"role": "user", "content": "Weather in Rome?"}], tools=[WEATHER_TOOL],
            tool_choice="required", stream=True, temperature=0, max_tokens=64,
        )
    )
    fragments = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert fragments[0].id and fragments[0].function.name == "get_weather"
    assert all(f.id is None and f.function.name is None for f in fragments[1:])
    arguments = json.loads("".join(f.function.arguments or "" for f in fragments))
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_vllm_json_schema_output_validates(router: RouterProcess) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    completion = router.openai().chat.completions.create(
        model=VLLM_MODEL,
        messages=[{"role": "user", "content": "Give the capital of France as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "capital", "schema": schema}},
        temperature=0,
        max_tokens=64,
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content), schema)


def test_vllm_stop_sequence(router: RouterProcess) -> None:
    client = router.openai()
    full = client.chat.completions.create(model=VLLM_MODEL, messages=CAPITAL, **GREEDY).choices[0].message.content
    assert "Paris" in full
    stopped = client.chat.completions.create(model=VLLM_MODEL, messages=CAPITAL, stop=["Paris"], **GREEDY)
    text = stopped.choices[0].message.content
    assert stopped.choices[0].finish_reason == "stop"
    assert "Paris" not in text and full.startswith(text)
    streamed = list(
        client.chat.completions.create(model=VLLM_MODEL, messages=CAPITAL, stop=["Paris"], stream=True, **GREEDY)
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == text
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_vllm_completions_raw_prompt(router: RouterProcess) -> None:
    completion = router.openai().completions.create(
        model=VLLM_MODEL, prompt="The capital of France is", max_tokens=8, temperature=0
    )
    assert completion.choices[0].text
    assert completion.usage.completion_tokens <= 8
