"""Chat Completions, Completions and the model / health routes end to end: openai SDK -> router process -> sim replicas.

The sim engine (tests/configs/router-sim.yaml) answers deterministically: 8
lorem words, the last user message echoed (rt-echo), schema-valid tool
arguments and JSON, reasoning before the answer (rt-reasoning).
"""

from __future__ import annotations

import json

import httpx
import jsonschema
import pytest

from router_process import ROUTER_CONFIG, RouterProcess, router_cluster, router_factory, sim_router  # noqa: F401

LOREM_8 = "Lorem ipsum dolor sit amet, consectetur adipiscing elit,"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
HELLO = [{"role": "user", "content": "Say hello"}]


def test_non_streaming_chat(sim_router: RouterProcess) -> None:
    completion = sim_router.openai().chat.completions.create(model="rt-sim", messages=HELLO)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "rt-sim"
    assert completion.created > 0
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == LOREM_8
    assert choice.finish_reason == "stop"
    assert completion.usage.completion_tokens == 8
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 8
    assert completion.usage.prompt_tokens_details.cached_tokens == 0


def test_streaming_chat_one_id_role_first_then_deltas(sim_router: RouterProcess) -> None:
    chunks = list(sim_router.openai().chat.completions.create(model="rt-sim", messages=HELLO, stream=True))
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == LOREM_8
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage is None for c in chunks)


def test_stream_ends_with_done(sim_router: RouterProcess) -> None:
    body = {"model": "rt-sim", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{sim_router.base_url}/v1/chat/completions", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in lines)


def test_include_usage_equals_non_streaming_usage(sim_router: RouterProcess) -> None:
    client = sim_router.openai()
    request = {"model": "rt-echo", "messages": [{"role": "user", "content": "one two three four five"}], "seed": 7}
    plain = client.chat.completions.create(**request)
    chunks = list(client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.model_dump() == plain.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == plain.choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == plain.choices[0].message.content


def test_tool_round_trip_with_required(sim_router: RouterProcess) -> None:
    client = sim_router.openai()
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model="rt-sim", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 21})})
    second = client.chat.completions.create(model="rt-sim", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == LOREM_8
    assert second.choices[0].message.tool_calls is None


def test_streamed_tool_call_fragments(sim_router: RouterProcess) -> None:
    chunks = list(
        sim_router.openai().chat.completions.create(
            model="rt-sim",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            stream=True,
        )
    )
    fragments = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(fragments) > 1
    first, rest = fragments[0], fragments[1:]
    assert first.index == 0 and first.id and first.type == "function" and first.function.name == "get_weather"
    assert all(f.index == 0 and f.id is None and f.function.name is None for f in rest)
    arguments = json.loads("".join(f.function.arguments or "" for f in fragments))
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_json_schema_output_validates(sim_router: RouterProcess) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": False,
    }
    completion = sim_router.openai().chat.completions.create(
        model="rt-sim",
        messages=[{"role": "user", "content": "A person, please"}],
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content), schema)


def test_json_object_output_parses(sim_router: RouterProcess) -> None:
    completion = sim_router.openai().chat.completions.create(
        model="rt-sim", messages=HELLO, response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(completion.choices[0].message.content), dict)


@pytest.mark.parametrize("stop", ["STOP", ["nothing-matches", "STOP"]])
def test_stop_sequences(sim_router: RouterProcess, stop: str | list[str]) -> None:
    client = sim_router.openai()
    messages = [{"role": "user", "content": "alpha beta STOP gamma delta"}]
    completion = client.chat.completions.create(model="rt-echo", messages=messages, stop=stop)
    assert completion.choices[0].message.content.rstrip() == "alpha beta"
    assert completion.choices[0].finish_reason == "stop"
    streamed = list(client.chat.completions.create(model="rt-echo", messages=messages, stop=stop, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == completion.choices[0].message.content
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_max_tokens_gives_length(sim_router: RouterProcess) -> None:
    client = sim_router.openai()
    for limit in ({"max_tokens": 3}, {"max_completion_tokens": 3}):
        completion = client.chat.completions.create(model="rt-sim", messages=HELLO, **limit)
        assert completion.choices[0].message.content == "Lorem ipsum dolor"
        assert completion.choices[0].finish_reason == "length"
        assert completion.usage.completion_tokens == 3


def test_reasoning_in_message_and_delta(sim_router: RouterProcess) -> None:
    client = sim_router.openai()
    completion = client.chat.completions.create(model="rt-reasoning", messages=HELLO, reasoning_effort="medium")
    message = completion.choices[0].message
    reasoning = message.model_extra["reasoning"]
    assert reasoning.startswith("Let me think")
    assert message.content == LOREM_8
    assert completion.usage.completion_tokens_details.reasoning_tokens == 8

    chunks = list(client.chat.completions.create(model="rt-reasoning", messages=HELLO, stream=True))
    streamed_reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in chunks)
    assert streamed_reasoning == reasoning
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == LOREM_8


def test_reasoning_effort_none_turns_reasoning_off(sim_router: RouterProcess) -> None:
    completion = sim_router.openai().chat.completions.create(
        model="rt-reasoning", messages=HELLO, reasoning_effort="none"
    )
    assert completion.choices[0].message.model_extra["reasoning"] is None


def test_history_with_every_role_and_replayed_reasoning(sim_router: RouterProcess) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": [{"type": "text", "text": "first question"}]},
        {"role": "assistant", "content": "first answer", "reasoning_content": "thinking it over"},
        {"role": "user", "content": "second question", "name": "ada"},
    ]
    completion = sim_router.openai().chat.completions.create(
        model="rt-echo", messages=messages, temperature=0.2, top_p=0.9, seed=1, presence_penalty=0.1,
        frequency_penalty=0.1, user="ada", extra_body={"top_k": 5, "repetition_penalty": 1.1},
    )
    assert completion.choices[0].message.content == "second question"


def test_image_to_vision_model(sim_router: RouterProcess) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    completion = sim_router.openai().chat.completions.create(
        model="rt-vision", messages=[{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}]
    )
    assert completion.choices[0].finish_reason == "stop"


def test_completions_raw_prompt(sim_router: RouterProcess) -> None:
    client = sim_router.openai()
    completion = client.completions.create(model="rt-echo", prompt="tell me a story")
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.choices[0].text == "tell me a story"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 4

    chunks = list(
        client.completions.create(
            model="rt-echo", prompt="tell me a story", stream=True, stream_options={"include_usage": True}
        )
    )
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "tell me a story"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == completion.usage.model_dump()


def test_models_list_and_retrieve(sim_router: RouterProcess) -> None:
    client = sim_router.openai()
    models = {m.id: m for m in client.models.list()}
    assert set(models) >= {"rt-sim", "rt-echo", "rt-reasoning", "rt-vision", "rt-absent"}
    sim = models["rt-sim"]
    assert sim.object == "model" and sim.owned_by == "fleetgate"
    assert sim.model_extra["context_length"] == 32768
    assert sim.model_extra["capabilities"]["tools"] is True
    assert sim.model_extra["replicas"] == 1
    assert models["rt-vision"].model_extra["capabilities"]["vision"] is True
    assert models["rt-echo"].model_extra["context_length"] == 64
    assert models["rt-absent"].model_extra["replicas"] == 0
    assert client.models.retrieve("rt-echo").id == "rt-echo"


def test_health_and_ready(sim_router: RouterProcess, router_factory, tmp_path) -> None:  # noqa: F811
    assert httpx.get(f"{sim_router.base_url}/health").json() == {"status": "ok"}
    not_ready = httpx.get(f"{sim_router.base_url}/ready")
    assert not_ready.status_code == 503
    assert "rt-absent" in not_ready.json()["missing"]

    import yaml

    config = yaml.safe_load(ROUTER_CONFIG.read_text())
    config["models"] = [m for m in config["models"] if m["name"] in ("rt-sim", "rt-echo")]
    path = tmp_path / "router-ready.yaml"
    path.write_text(yaml.safe_dump(config))
    router = router_factory(config=path)
    router.wait_for_replicas("rt-sim", 1)
    ready = httpx.get(f"{router.base_url}/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_metrics_count_requests_and_tokens(sim_router: RouterProcess) -> None:
    before = sim_router.metric("fleetgate_completion_tokens_total", model="rt-sim", dialect="chat")
    requests_before = sim_router.metric(
        "fleetgate_requests_total", model="rt-sim", dialect="chat", stream="true", status="200"
    )
    ttft_before = sim_router.metric("fleetgate_time_to_first_token_seconds_count", model="rt-sim", dialect="chat")
    list(sim_router.openai().chat.completions.create(model="rt-sim", messages=HELLO, stream=True))
    assert sim_router.metric("fleetgate_completion_tokens_total", model="rt-sim", dialect="chat") == before + 8
    assert (
        sim_router.metric("fleetgate_requests_total", model="rt-sim", dialect="chat", stream="true", status="200")
        == requests_before + 1
    )
    assert (
        sim_router.metric("fleetgate_time_to_first_token_seconds_count", model="rt-sim", dialect="chat")
        == ttft_before + 1
    )
