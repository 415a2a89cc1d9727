"""The vLLM engine on CPU with the bundled SmolLM2-135M, over real gRPC to a real `fleetgate replica` process.

One replica per test session (the `vllm_replica` fixture): deterministic output
at temperature 0, stop sequences, length limits, structured output, forced tool
calls, cancellation and abort, context-length refusal and clamping, usage.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import jsonschema
import pytest

from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc

Reason = pb.Finish.Reason
CAPITAL_QUESTION = "What is the capital of France?"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER_TOOL = pb.Tool(
    name="get_weather", description="Current weather in a city", parameters_json=json.dumps(WEATHER_SCHEMA)
)


@pytest.fixture(scope="module")
async def stub(vllm_replica):
    channel = grpc.aio.insecure_channel(vllm_replica.address)
    yield replica_pb2_grpc.ReplicaStub(channel)
    await channel.close()


def chat(text: str, *, request_id: str | None = None, **fields) -> pb.GenerateRequest:
    return pb.GenerateRequest(
        request_id=request_id or f"test-{uuid.uuid4().hex[:8]}",
        model="smollm2-135m",
        messages=[pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text=text)])],
        **fields,
    )


def greedy(max_tokens: int, **knobs) -> pb.Sampling:
    return pb.Sampling(temperature=0.0, max_tokens=max_tokens, **knobs)


async def events_of(stub, request: pb.GenerateRequest) -> list[pb.GenerateEvent]:
    return [event async for event in stub.Generate(request)]


def kinds(events: list[pb.GenerateEvent]) -> list[str]:
    return [event.WhichOneof("event") for event in events]


def text_of(events: list[pb.GenerateEvent]) -> str:
    return "".join(event.text.text for event in events if event.HasField("text"))


def assert_well_formed(events: list[pb.GenerateEvent]) -> None:
    """started first, then deltas, then usage, then exactly one finish, last."""
    names = kinds(events)
    assert names[0] == "started"
    assert names[-2:] == ["usage", "finish"]
    assert names.count("finish") == 1 and names.count("usage") == 1 and names.count("started") == 1


async def running_requests(stub) -> int:
    return (await stub.Info(pb.InfoRequest())).load.running


async def wait_until_idle(stub) -> int:
    for _ in range(200):
        if (running := await running_requests(stub)) == 0:
            return running
        await asyncio.sleep(0.05)
    return await running_requests(stub)


async def test_info_describes_the_model(stub):
    info = await stub.Info(pb.InfoRequest())
    assert list(info.model_names) == ["smollm2-135m"]
    assert info.engine == "vllm"
    assert info.max_context_length == 2048
    # SmolLM2's chat template does not render tools and it has no reasoning parser.
    assert (info.capabilities.tools, info.capabilities.reasoning) == (False, False)
    assert info.capabilities.structured_output
    assert 0.0 <= info.load.kv_cache_usage <= 1.0


async def test_greedy_answer_is_sensible_and_repeatable(stub):
    request = chat(CAPITAL_QUESTION, sampling=greedy(24))
    first, second = await events_of(stub, request), await events_of(stub, request)
    for events in (first, second):
        assert_well_formed(events)
        assert set(kinds(events)[1:-2]) == {"text"}
        assert events[-1].finish.reason == Reason.REASON_STOP
    assert text_of(first) == text_of(second)
    assert "Paris" in text_of(first)


async def test_stop_sequence_is_reported_and_cut(stub):
    full = text_of(await events_of(stub, chat(CAPITAL_QUESTION, sampling=greedy(24))))
    events = await events_of(stub, chat(CAPITAL_QUESTION, sampling=greedy(24, stop=["Paris", "Rome"])))
    assert_well_formed(events)
    assert events[-1].finish.reason == Reason.REASON_STOP_SEQUENCE
    assert events[-1].finish.stop_sequence == "Paris"
    assert text_of(events) == full[: full.index("Paris")]


async def test_max_tokens_ends_with_length(stub):
    events = await events_of(stub, chat("Tell me a long story about a dragon.", sampling=greedy(5)))
    assert_well_formed(events)
    assert events[0].started.max_tokens == 5
    assert events[-1].finish.reason == Reason.REASON_LENGTH
    assert events[-2].usage.completion_tokens == 5


async def test_json_schema_output_parses_and_validates(stub):
    schema = {
        "type": "object",
        "properties": {
            "country": {"type": "string"},
            "capital": {"type": "string"},
            "continent": {"type": "string", "enum": ["Africa", "America", "Asia", "Europe", "Oceania"]},
            "landlocked": {"type": "boolean"},
        },
        "required": ["country", "capital", "continent", "landlocked"],
        "additionalProperties": False,
    }
    response_format = pb.ResponseFormat(
        kind=pb.ResponseFormat.KIND_JSON_SCHEMA, schema_json=json.dumps(schema), name="country"
    )
    events = await events_of(
        stub, chat("Describe France as JSON.", sampling=greedy(80), response_format=response_format)
    )
    assert_well_formed(events)
    assert events[-1].finish.reason == Reason.REASON_STOP, text_of(events)
    jsonschema.validate(json.loads(text_of(events)), schema)


async def test_json_object_output_parses(stub):
    response_format = pb.ResponseFormat(kind=pb.ResponseFormat.KIND_JSON_OBJECT)
    events = await events_of(
        stub,
        chat("What is the capital of France? Answer in JSON.", sampling=greedy(60), response_format=response_format),
    )
    assert events[-1].finish.reason == Reason.REASON_STOP, text_of(events)
    assert isinstance(json.loads(text_of(events)), dict)


def tool_calls_of(events: list[pb.GenerateEvent]) -> list[dict]:
    """Tool calls folded from start / delta / end events (asserting their order)."""
    calls: list[dict] = []
    open_index = None
    for event in events:
        if event.HasField("tool_call_start"):
            assert open_index is None
            open_index = event.tool_call_start.index
            assert open_index == len(calls)
            calls.append({"id": event.tool_call_start.id, "name": event.tool_call_start.name, "arguments": ""})
        elif event.HasField("tool_call_delta"):
            assert event.tool_call_delta.index == open_index
            calls[open_index]["arguments"] += event.tool_call_delta.delta
        elif event.HasField("tool_call_end"):
            assert event.tool_call_end.index == open_index
            open_index = None
    assert open_index is None
    return calls


@pytest.mark.parametrize(
    "tool_choice",
    [pb.ToolChoice(mode=pb.ToolChoice.MODE_REQUIRED), pb.ToolChoice(mode=pb.ToolChoice.MODE_NAMED, name="get_weather")],
    ids=["required", "named"],
)
async def test_forced_tool_call_gives_valid_tool_call_events(stub, tool_choice):
    request = chat(
        "What is the weather in Paris in celsius?",
        sampling=greedy(80),
        tools=[
            WEATHER_TOOL,
            pb.Tool(name="get_time", parameters_json=json.dumps({"type": "object", "properties": {}})),
        ],
        tool_choice=tool_choice,
        parallel_tool_calls=False,
    )
    events = await events_of(stub, request)
    assert_well_formed(events)
    assert events[-1].finish.reason == Reason.REASON_TOOL_CALLS
    assert text_of(events) == ""
    calls = tool_calls_of(events)
    assert len(calls) == 1
    call = calls[0]
    assert call["id"]
    assert (
        call["name"] == "get_weather"
        if tool_choice.mode == pb.ToolChoice.MODE_NAMED
        else call["name"] in {"get_weather", "get_time"}
    )
    if call["name"] == "get_weather":
        jsonschema.validate(json.loads(call["arguments"]), WEATHER_SCHEMA)


async def test_cancelled_call_leaves_nothing_running(stub):
    call = stub.Generate(chat("Write a very long story about a dragon and a knight.", sampling=greedy(1500)))
    seen = []
    async for event in call:
        seen.append(event.WhichOneof("event"))
        if seen.count("text") == 3:
            break
    assert seen[0] == "started"
    assert await running_requests(stub) == 1
    call.cancel()
    assert await wait_until_idle(stub) == 0


async def test_abort_by_request_id_finishes_with_abort(stub):
    request = chat("Write a very long story about a dragon and a knight.", sampling=greedy(1500))
    events = []
    async for event in stub.Generate(request):
        events.append(event)
        if event.HasField("text") and kinds(events).count("text") == 2:
            assert (await stub.Abort(pb.AbortRequest(request_id=request.request_id))).found
    assert_well_formed(events)
    assert events[-1].finish.reason == Reason.REASON_ABORT
    assert not (await stub.Abort(pb.AbortRequest(request_id=request.request_id))).found
    assert await wait_until_idle(stub) == 0


async def test_too_long_prompt_is_refused_cleanly(stub):
    events = await events_of(stub, chat("word " * 3000, sampling=greedy(10)))
    assert kinds(events) == ["finish"]
    finish = events[0].finish
    assert finish.reason == Reason.REASON_ERROR
    assert finish.error_code == pb.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED
    assert "2048" in finish.error_message and "prompt" in finish.error_message
    # The replica is fine afterwards.
    assert "Paris" in text_of(await events_of(stub, chat(CAPITAL_QUESTION, sampling=greedy(24))))


async def prompt_leaving_room(stub, room: int) -> pb.GenerateRequest:
    """A chat request whose prompt leaves exactly ``room`` tokens of the 2048-token context."""
    words = 1800
    for _ in range(10):
        request = chat("hello " * words, sampling=pb.Sampling(temperature=0.0, max_tokens=32000))
        tokens = (await stub.CountTokens(request)).prompt_tokens
        if tokens == 2048 - room:
            return request
        words += 2048 - room - tokens
    raise AssertionError("could not size the prompt")


async def test_large_max_tokens_is_clamped_to_the_context_left(stub):
    request = await prompt_leaving_room(stub, 6)
    events = await events_of(stub, request)
    assert_well_formed(events)
    assert events[0].started.max_tokens == 6
    assert events[-1].finish.reason == Reason.REASON_LENGTH
    assert events[-2].usage.completion_tokens == 6


async def test_usage_is_the_engines_count(stub):
    request = chat("The quick brown fox jumps over the lazy dog. " * 40 + "What does the fox do?", sampling=greedy(4))
    counted = (await stub.CountTokens(request)).prompt_tokens
    first, second = await events_of(stub, request), await events_of(stub, request)
    for events in (first, second):
        assert events[0].started.prompt_tokens == counted
        usage = events[-2].usage
        assert (usage.prompt_tokens, usage.completion_tokens) == (counted, 4)
        assert events[-1].finish.reason == Reason.REASON_LENGTH
    # The second run finds the shared prompt prefix in the KV cache.
    assert 0 < second[-2].usage.cached_tokens <= counted


async def test_raw_prompt_is_used_without_template(stub):
    raw = pb.GenerateRequest(
        request_id="raw-1", model="smollm2-135m", raw_prompt="The capital of France is", sampling=greedy(4)
    )
    events = await events_of(stub, raw)
    assert_well_formed(events)
    assert events[0].started.prompt_tokens == (await stub.CountTokens(raw)).prompt_tokens
    assert events[0].started.prompt_tokens < 10  # no chat template around it
    assert "Paris" in text_of(events)


async def test_invalid_request_is_refused_before_start(stub):
    bad_schema = pb.ResponseFormat(kind=pb.ResponseFormat.KIND_JSON_SCHEMA, schema_json="{not json")
    events = await events_of(stub, chat(CAPITAL_QUESTION, response_format=bad_schema))
    assert kinds(events) == ["finish"]
    assert events[0].finish.error_code == pb.ERROR_CODE_INVALID_REQUEST


async def test_load_reads_idle_once_requests_finish(stub, vllm_replica):
    """Info and the registry record report no running or waiting request once all have finished, cancelled ones too."""
    finished = asyncio.gather(*(events_of(stub, chat(CAPITAL_QUESTION, sampling=greedy(16))) for _ in range(3)))
    call = stub.Generate(chat("Write a very long story about a dragon and a knight.", sampling=greedy(1500)))
    async for event in call:
        if event.HasField("text"):
            break
    call.cancel()
    for events in await finished:
        assert_well_formed(events)
    # The registry is rewritten every heartbeat (0.5 s here): idle within a few of them.
    record = None
    for _ in range(100):
        info = await stub.Info(pb.InfoRequest())
        record = vllm_replica.registry_record()
        if (info.load.running, info.load.waiting, record.load.running, record.load.waiting) == (0, 0, 0, 0):
            break
        await asyncio.sleep(0.05)
    assert (info.load.running, info.load.waiting) == (0, 0)
    assert record is not None and (record.load.running, record.load.waiting) == (0, 0)
