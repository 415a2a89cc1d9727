"""The sim engine end to end over real gRPC: event order, tool calls, structured output, limits, abort, faults."""

from __future__ import annotations

import asyncio
import json
import re

import grpc
import jsonschema
import pytest

from fleetgate.core import grpc_options
from fleetgate.core.config import load_config
from fleetgate.replicas.engine_factory import build_engine
from fleetgate.replicas.server import start_replica_server
from fleetgate.v1 import replica_pb2 as pb
from fleetgate.v1 import replica_pb2_grpc
from replica_process import SIM_CONFIG

Reason = pb.Finish.Reason
MODELS = ["sim", "sim-reasoning", "sim-echo", "sim-slow", "sim-faulty"]

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
}
BOOKING_SCHEMA = {
    "type": "object",
    "properties": {
        "guests": {"type": "integer", "minimum": 2, "maximum": 8},
        "budget": {"type": "number", "exclusiveMinimum": 100},
        "nights": {"type": "array", "items": {"type": "string", "format": "date"}, "minItems": 2, "uniqueItems": True},
        "contact": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "phone": {"type": ["string", "null"], "minLength": 5},
            },
            "required": ["email"],
            "additionalProperties": False,
        },
        "room": {"$ref": "#/$defs/room"},
    },
    "required": ["guests", "nights", "contact", "room"],
    "$defs": {"room": {"type": "string", "enum": ["single", "double", "suite"]}},
}


@pytest.fixture(scope="module")
async def stubs():
    """One in-process replica server per sim model of tests/configs/sim.yaml, with a gRPC stub each (router options)."""
    config = load_config(SIM_CONFIG)
    servers, channels, result = [], [], {}
    for name in MODELS:
        engine = build_engine(config.model(name), f"{name}-0")
        await engine.start()
        server = await start_replica_server(engine, replica_id=f"{name}-0", model_name=name)
        channel = grpc.aio.insecure_channel(server.address, options=grpc_options.CHANNEL_OPTIONS)
        servers.append(server)
        channels.append(channel)
        result[name] = replica_pb2_grpc.ReplicaStub(channel)
    yield result
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(0)


def user(text: str) -> pb.Message:
    return pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text=text)])


def request(model: str, text: str = "What is the weather in Paris?", **fields) -> pb.GenerateRequest:
    return pb.GenerateRequest(request_id=f"req-{model}-{id(fields)}", model=model, messages=[user(text)], **fields)


async def collect(stub, req: pb.GenerateRequest) -> list[pb.GenerateEvent]:
    return [event async for event in stub.Generate(req)]


def kinds(events: list[pb.GenerateEvent]) -> list[str]:
    return [event.WhichOneof("event") for event in events]


def joined(events: list[pb.GenerateEvent], kind: str) -> str:
    return "".join(getattr(event, kind).text for event in events if event.WhichOneof("event") == kind)


def tool(name: str, schema: dict) -> pb.Tool:
    return pb.Tool(name=name, description=f"{name} tool", parameters_json=json.dumps(schema))


async def test_text_stream_is_started_text_usage_finish(stubs):
    req = request("sim")
    events = await collect(stubs["sim"], req)
    assert kinds(events) == ["started"] + ["text"] * 8 + ["usage", "finish"]
    started, usage, finish = events[0].started, events[-2].usage, events[-1].finish
    assert started.replica_id == "sim-0"
    assert started.prompt_tokens == usage.prompt_tokens == (await stubs["sim"].CountTokens(req)).prompt_tokens
    assert usage.completion_tokens == 8
    assert joined(events, "text") == "Lorem ipsum dolor sit amet, consectetur adipiscing elit,"
    assert finish.reason == Reason.REASON_STOP


async def test_same_request_gives_same_text(stubs):
    first = await collect(stubs["sim"], request("sim", "Hello"))
    second = await collect(stubs["sim"], request("sim", "Hello"))
    assert joined(first, "text") == joined(second, "text")


async def test_reasoning_comes_before_text_and_is_counted(stubs):
    events = await collect(stubs["sim-reasoning"], request("sim-reasoning"))
    assert kinds(events) == ["started"] + ["reasoning"] * 8 + ["text"] * 8 + ["usage", "finish"]
    assert joined(events, "reasoning").startswith("Let me think")
    assert events[-2].usage.completion_tokens == 16
    assert events[-2].usage.reasoning_tokens == 8


async def test_reasoning_can_be_turned_off_per_request(stubs):
    events = await collect(stubs["sim-reasoning"], request("sim-reasoning", enable_reasoning=False))
    assert kinds(events) == ["started"] + ["text"] * 8 + ["usage", "finish"]
    assert events[-2].usage.reasoning_tokens == 0


@pytest.mark.parametrize("schema", [WEATHER_SCHEMA, BOOKING_SCHEMA], ids=["weather", "booking"])
async def test_required_tool_call_streams_arguments_that_validate(stubs, schema):
    req = request("sim", tools=[tool("act", schema)], tool_choice=pb.ToolChoice(mode=pb.ToolChoice.MODE_REQUIRED))
    events = await collect(stubs["sim"], req)
    sequence = kinds(events)
    deltas = sequence.count("tool_call_delta")
    assert deltas >= 2
    assert sequence == ["started", "tool_call_start"] + ["tool_call_delta"] * deltas + [
        "tool_call_end",
        "usage",
        "finish",
    ]
    start = events[1].tool_call_start
    assert (start.index, start.name) == (0, "act")
    assert re.fullmatch(r"call_[0-9a-f]{24}", start.id)
    arguments = json.loads("".join(e.tool_call_delta.delta for e in events if e.HasField("tool_call_delta")))
    jsonschema.validate(arguments, schema)
    assert events[-1].finish.reason == Reason.REASON_TOOL_CALLS
    assert events[-2].usage.completion_tokens == 1 + deltas


async def test_seeded_tool_call_gets_the_same_id_every_time(stubs):
    def seeded(request_id: str) -> pb.GenerateRequest:
        return pb.GenerateRequest(
            request_id=request_id, model="sim", messages=[user("weather?")], tools=[tool("weather", WEATHER_SCHEMA)],
            tool_choice=pb.ToolChoice(mode=pb.ToolChoice.MODE_REQUIRED), sampling=pb.Sampling(seed=7),
        )

    first, second = [await collect(stubs["sim"], seeded(request_id)) for request_id in ("seeded-1", "seeded-2")]
    assert first[1].tool_call_start.id == second[1].tool_call_start.id
    unseeded = await collect(stubs["sim"], request("sim", tools=[tool("weather", WEATHER_SCHEMA)],
                                                  tool_choice=pb.ToolChoice(mode=pb.ToolChoice.MODE_REQUIRED)))
    assert unseeded[1].tool_call_start.id != first[1].tool_call_start.id


async def test_named_tool_choice_calls_that_tool(stubs):
    tools = [tool("weather", WEATHER_SCHEMA), tool("book", BOOKING_SCHEMA)]
    req = request("sim", tools=tools, tool_choice=pb.ToolChoice(mode=pb.ToolChoice.MODE_NAMED, name="book"))
    events = await collect(stubs["sim"], req)
    assert events[1].tool_call_start.name == "book"


async def test_tool_choice_none_answers_with_text(stubs):
    req = request(
        "sim", tools=[tool("weather", WEATHER_SCHEMA)], tool_choice=pb.ToolChoice(mode=pb.ToolChoice.MODE_NONE)
    )
    events = await collect(stubs["sim"], req)
    assert "tool_call_start" not in kinds(events)
    assert events[-1].finish.reason == Reason.REASON_STOP


async def test_reasoning_model_reasons_before_its_tool_call(stubs):
    req = request("sim-reasoning", tools=[tool("weather", WEATHER_SCHEMA)])
    sequence = kinds(await collect(stubs["sim-reasoning"], req))
    assert sequence[:10] == ["started"] + ["reasoning"] * 8 + ["tool_call_start"]
    assert "text" not in sequence


async def test_unknown_named_tool_is_refused(stubs):
    req = request(
        "sim",
        tools=[tool("weather", WEATHER_SCHEMA)],
        tool_choice=pb.ToolChoice(mode=pb.ToolChoice.MODE_NAMED, name="nope"),
    )
    events = await collect(stubs["sim"], req)
    assert kinds(events) == ["finish"]
    assert events[0].finish.error_code == pb.ERROR_CODE_INVALID_REQUEST


async def test_max_tokens_ends_with_length(stubs):
    events = await collect(stubs["sim"], request("sim", sampling=pb.Sampling(max_tokens=3)))
    assert kinds(events) == ["started", "text", "text", "text", "usage", "finish"]
    assert events[0].started.max_tokens == 3
    assert events[-2].usage.completion_tokens == 3
    assert events[-1].finish.reason == Reason.REASON_LENGTH


async def test_stop_sequence_cuts_the_text_before_the_match(stubs):
    events = await collect(stubs["sim"], request("sim", sampling=pb.Sampling(stop=["zzz", "it am"])))
    assert joined(events, "text") == "Lorem ipsum dolor s"
    finish = events[-1].finish
    assert (finish.reason, finish.stop_sequence) == (Reason.REASON_STOP_SEQUENCE, "it am")


async def test_json_schema_response_format_validates(stubs):
    response_format = pb.ResponseFormat(
        kind=pb.ResponseFormat.KIND_JSON_SCHEMA, schema_json=json.dumps(BOOKING_SCHEMA), name="booking"
    )
    events = await collect(stubs["sim"], request("sim", response_format=response_format))
    jsonschema.validate(json.loads(joined(events, "text")), BOOKING_SCHEMA)
    assert events[-1].finish.reason == Reason.REASON_STOP


async def test_json_object_response_format_is_a_json_object(stubs):
    response_format = pb.ResponseFormat(kind=pb.ResponseFormat.KIND_JSON_OBJECT)
    events = await collect(stubs["sim"], request("sim", response_format=response_format))
    assert isinstance(json.loads(joined(events, "text")), dict)


async def test_echo_repeats_the_last_user_message(stubs):
    events = await collect(stubs["sim-echo"], request("sim-echo", "Say this back please"))
    assert joined(events, "text") == "Say this back please"
    assert events[-2].usage.completion_tokens == 4


async def test_raw_prompt_is_used_as_is(stubs):
    req = pb.GenerateRequest(request_id="raw", model="sim-echo", raw_prompt="Once upon a time")
    events = await collect(stubs["sim-echo"], req)
    assert events[0].started.prompt_tokens == 4
    assert joined(events, "text") == "Once upon a time"


async def test_prompt_longer_than_the_context_is_refused(stubs):
    events = await collect(stubs["sim-echo"], request("sim-echo", "word " * 100))
    assert kinds(events) == ["finish"]
    finish = events[0].finish
    assert (finish.reason, finish.error_code) == (Reason.REASON_ERROR, pb.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED)
    assert "64" in finish.error_message


async def test_max_tokens_is_clamped_to_the_context_left(stubs):
    req = request("sim-echo", "one two three four five", sampling=pb.Sampling(max_tokens=32000))
    events = await collect(stubs["sim-echo"], req)
    prompt_tokens = events[0].started.prompt_tokens
    assert events[0].started.max_tokens == 64 - prompt_tokens


async def test_images_are_refused_without_vision(stubs):
    message = pb.Message(role=pb.ROLE_USER, content=[pb.ContentPart(text="what is this"), pb.ContentPart(image_url="https://example.com/a.png")])
    events = await collect(stubs["sim"], pb.GenerateRequest(request_id="img", model="sim", messages=[message]))
    assert kinds(events) == ["finish"]
    assert events[0].finish.error_code == pb.ERROR_CODE_UNSUPPORTED


async def test_wrong_model_is_refused(stubs):
    events = await collect(stubs["sim"], request("other-model"))
    assert events[0].finish.error_code == pb.ERROR_CODE_UNKNOWN_MODEL


async def test_injected_error_rate_refuses_before_generation(stubs):
    events = await collect(stubs["sim-faulty"], request("sim-faulty"))
    assert kinds(events) == ["finish"]
    finish = events[0].finish
    assert (finish.reason, finish.error_code) == (Reason.REASON_ERROR, pb.ERROR_CODE_INTERNAL)


async def read_to_end(call) -> list[pb.GenerateEvent]:
    events = []
    while (event := await call.read()) is not grpc.aio.EOF:
        events.append(event)
    return events


async def running(stub) -> int:
    return (await stub.Info(pb.InfoRequest())).load.running


async def wait_running(stub, expected: int) -> int:
    for _ in range(100):
        if await running(stub) == expected:
            break
        await asyncio.sleep(0.05)
    return await running(stub)


async def test_abort_rpc_ends_the_stream_with_abort(stubs):
    stub = stubs["sim-slow"]
    req = request("sim-slow")
    call = stub.Generate(req)
    seen = [await call.read(), await call.read()]
    assert kinds(seen) == ["started", "text"]
    assert await running(stub) == 1
    assert (await stub.Abort(pb.AbortRequest(request_id=req.request_id))).found
    rest = await read_to_end(call)
    assert kinds(rest)[-2:] == ["usage", "finish"]
    assert rest[-1].finish.reason == Reason.REASON_ABORT
    assert await running(stub) == 0
    assert not (await stub.Abort(pb.AbortRequest(request_id=req.request_id))).found


async def test_cancelling_the_call_aborts_the_engine_request(stubs):
    stub = stubs["sim-slow"]
    call = stub.Generate(request("sim-slow"))
    assert (await call.read()).HasField("started")
    assert (await call.read()).HasField("text")
    assert await running(stub) == 1
    call.cancel()
    assert await wait_running(stub, 0) == 0


async def test_info_and_health(stubs):
    info = await stubs["sim-reasoning"].Info(pb.InfoRequest())
    assert (info.replica_id, list(info.model_names), info.engine) == ("sim-reasoning-0", ["sim-reasoning"], "sim")
    assert info.max_context_length == 32768
    assert info.capabilities.tools and info.capabilities.reasoning and info.capabilities.structured_output
    assert not info.capabilities.vision
    assert (await stubs["sim"].Health(pb.HealthRequest())).healthy


async def test_a_request_above_grpcs_4_mib_default_is_served(stubs):
    words = 2 * 1024 * 1024  # "w " each: 4 MiB of text, plus the rest of the message
    large = request("sim", "w " * words)
    assert large.ByteSize() > 4 * 1024 * 1024
    assert large.ByteSize() < grpc_options.MAX_MESSAGE_BYTES
    assert (await stubs["sim"].CountTokens(large)).prompt_tokens == words + 1  # + the role marker


async def test_replica_that_dies_mid_stream_breaks_the_stream(replica_factory):
    replica = replica_factory("sim-dies")
    async with grpc.aio.insecure_channel(replica.address) as channel:
        call = replica_pb2_grpc.ReplicaStub(channel).Generate(request("sim-dies"))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            async for event in call:
                received.append(event)
    assert kinds(received) == ["started", "text", "text", "text"]
    assert failure.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    assert replica.wait_exit(timeout=10) != 0
