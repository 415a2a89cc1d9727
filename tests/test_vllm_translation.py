"""The vLLM engine's pure translations, without an engine: messages, budget, sampling, forced tool calls, finish."""

from __future__ import annotations

import json
import re

import pytest

from fleetgate.core.events import ErrorCode
from fleetgate.replicas.completion_budget import completion_budget
from fleetgate.replicas.formats.openai_chat import chat_message, chat_template_kwargs, chat_tool_choice, chat_tools
from fleetgate.replicas.formats.tool_call_events import ToolCallEvents
from fleetgate.replicas.formats.vllm_parsers import PlainTextOutput
from fleetgate.replicas.refusal import Refusal
from fleetgate.replicas.vllm_engine.finish import finish_event
from fleetgate.replicas.vllm_engine.forced_tool_calls import ForcedToolCallParser
from fleetgate.replicas.vllm_engine.sampling import sampling_params
from fleetgate.v1 import replica_pb2 as pb

Reason = pb.Finish.Reason
Mode = pb.ToolChoice.Mode


def text_message(role: int, text: str, **fields) -> pb.Message:
    return pb.Message(role=role, content=[pb.ContentPart(text=text)], **fields)


def test_completion_budget_refuses_clamps_and_defaults():
    assert completion_budget(100, 2048, None, clamp=True) == 1948
    assert completion_budget(100, 2048, 32000, clamp=True) == 1948
    assert completion_budget(100, 2048, 50, clamp=False) == 50
    with pytest.raises(Refusal) as no_room:
        completion_budget(2048, 2048, 10, clamp=True)
    assert no_room.value.code == ErrorCode.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED
    with pytest.raises(Refusal) as too_many:
        completion_budget(100, 2048, 32000, clamp=False)
    assert too_many.value.code == ErrorCode.ERROR_CODE_CONTEXT_LENGTH_EXCEEDED
    assert "1948" in too_many.value.message


def test_messages_become_openai_chat_messages():
    call = pb.ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    assistant = pb.Message(role=pb.ROLE_ASSISTANT, tool_calls=[call], reasoning="Need the weather.")
    assert chat_message(assistant) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
        "reasoning": "Need the weather.",
    }
    tool = text_message(pb.ROLE_TOOL, '{"temp": 21}', tool_call_id="call_1")
    assert chat_message(tool) == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "call_1"}
    picture = pb.Message(
        role=pb.ROLE_USER,
        content=[pb.ContentPart(text="What is this?"), pb.ContentPart(image_url="data:image/png;base64,AAAA")],
    )
    assert chat_message(picture)["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]


def test_tools_tool_choice_and_template_arguments():
    request = pb.GenerateRequest(
        messages=[text_message(pb.ROLE_USER, "Hi"), text_message(pb.ROLE_ASSISTANT, "Hello, I am")],
        tools=[pb.Tool(name="now")],
        tool_choice=pb.ToolChoice(mode=Mode.MODE_NAMED, name="now"),
        reasoning_effort="low",
        enable_reasoning=False,
    )
    tools = chat_tools(request)
    assert tools == [
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
    ]
    assert chat_tool_choice(request) == {"type": "function", "function": {"name": "now"}}
    kwargs = chat_template_kwargs(request, tools)
    # The conversation ends with an assistant message: the model continues it.
    assert (kwargs["add_generation_prompt"], kwargs["continue_final_message"]) == (False, True)
    assert (kwargs["reasoning_effort"], kwargs["enable_thinking"]) == ("low", False)
    assert chat_tool_choice(pb.GenerateRequest(tool_choice=pb.ToolChoice(mode=Mode.MODE_REQUIRED))) == "none"


def test_tool_call_deltas_become_ordered_events():
    calls = ToolCallEvents()
    out = calls.delta(0, None, None, '{"ci')  # arguments before the name: held
    assert out == []
    out += calls.delta(0, "call_a", "get_weather", 'ty": "Paris"}')
    out += calls.delta(1, "call_b", "now", "{}")
    out += calls.close()
    assert [e.WhichOneof("event") for e in out] == [
        "tool_call_start", "tool_call_delta", "tool_call_end", "tool_call_start", "tool_call_delta", "tool_call_end",
    ]
    assert (out[0].tool_call_start.index, out[0].tool_call_start.id, out[0].tool_call_start.name) == (
        0,
        "call_a",
        "get_weather",
    )
    assert out[1].tool_call_delta.delta == '{"city": "Paris"}'
    assert (out[3].tool_call_start.index, out[3].tool_call_start.name) == (1, "now")
    assert calls.made_tool_calls


def test_required_tool_call_json_streams_as_tool_call_events():
    parser = ForcedToolCallParser(PlainTextOutput(), pb.ToolChoice(mode=Mode.MODE_REQUIRED))
    output = '[{"name": "get_weather", "parameters": {"city": "Paris"}}, {"name": "now", "parameters": {}}]'
    events = []
    for start in range(0, len(output), 7):
        events += parser.feed(output[start : start + 7], [1])
    events += parser.close()
    starts = [e.tool_call_start for e in events if e.HasField("tool_call_start")]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "now")]
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", s.id) for s in starts) and starts[0].id != starts[1].id
    arguments: dict[int, str] = {}
    for event in events:
        if event.HasField("tool_call_delta"):
            arguments[event.tool_call_delta.index] = (
                arguments.get(event.tool_call_delta.index, "") + event.tool_call_delta.delta
            )
    assert {i: json.loads(a) for i, a in arguments.items()} == {0: {"city": "Paris"}, 1: {}}
    assert [e.WhichOneof("event") for e in events].count("tool_call_end") == 2
    assert not any(e.HasField("text") for e in events)
    assert parser.made_tool_calls


def test_named_tool_call_streams_its_arguments():
    parser = ForcedToolCallParser(PlainTextOutput(), pb.ToolChoice(mode=Mode.MODE_NAMED, name="get_weather"))
    events = parser.feed('{"city": ', [1]) + parser.feed('"Paris"}', [2]) + parser.close()
    assert [e.WhichOneof("event") for e in events] == [
        "tool_call_start",
        "tool_call_delta",
        "tool_call_delta",
        "tool_call_end",
    ]
    assert events[0].tool_call_start.name == "get_weather"
    assert re.fullmatch(r"call_[0-9a-f]{24}", events[0].tool_call_start.id)
    assert "".join(e.tool_call_delta.delta for e in events[1:3]) == '{"city": "Paris"}'


def test_sampling_params_take_request_knobs_over_model_defaults():
    request = pb.GenerateRequest(
        sampling=pb.Sampling(temperature=0.2, seed=7, stop=["END", ""], repetition_penalty=1.1)
    )
    params = sampling_params(
        request, max_tokens=64, defaults={"temperature": 0.7, "top_p": 0.9, "max_tokens": 4096},
        structured_outputs=None, stop_token_ids=[42],
    )
    assert (params.temperature, params.top_p, params.seed, params.max_tokens) == (pytest.approx(0.2), 0.9, 7, 64)
    assert params.stop == ["END"]
    assert params.stop_token_ids == [42]
    assert params.repetition_penalty == pytest.approx(1.1)


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason", "tool_calls", "reason", "stop_sequence"),
    [
        ("stop", None, False, Reason.REASON_STOP, ""),
        ("stop", "Paris", False, Reason.REASON_STOP_SEQUENCE, "Paris"),
        ("stop", 200012, True, Reason.REASON_TOOL_CALLS, ""),
        ("length", None, True, Reason.REASON_LENGTH, ""),
        ("abort", None, False, Reason.REASON_ABORT, ""),
        ("error", None, False, Reason.REASON_ERROR, ""),
    ],
)
def test_finish_reasons(finish_reason, stop_reason, tool_calls, reason, stop_sequence):
    finish = finish_event(finish_reason, stop_reason, tool_calls).finish
    assert (finish.reason, finish.stop_sequence) == (reason, stop_sequence)


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from vllm.tokenizers import get_tokenizer

    from fleetgate.replicas.bundled_model import resolve_model_path

    return get_tokenizer(resolve_model_path("bundled:smollm2-135m"))


@pytest.mark.parametrize(
    ("tool_parser", "output", "text"),
    [
        ("pythonic", '[get_weather(city="Paris")]', ""),
        ("hermes", 'Sure. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>', "Sure. "),
    ],
)
def test_vllm_tool_parser_output_becomes_tool_call_events(smollm2_tokenizer, tool_parser, output, text):
    from fleetgate.replicas.formats.vllm_parsers import VllmParserOutput, parser_class, vllm_chat_request

    request = pb.GenerateRequest(
        messages=[text_message(pb.ROLE_USER, "Weather in Paris?")],
        tools=[
            pb.Tool(
                name="get_weather",
                parameters_json=json.dumps({"type": "object", "properties": {"city": {"type": "string"}}}),
            )
        ],
    )
    chat_request = vllm_chat_request(request)
    parser = VllmParserOutput(
        parser_class(None, tool_parser, smollm2_tokenizer)(smollm2_tokenizer, chat_request.tools), chat_request
    )
    parser.bind_prompt(smollm2_tokenizer.encode("Weather in Paris?"))
    token_ids = smollm2_tokenizer.encode(output, add_special_tokens=False)
    events, decoded = [], ""
    for end in range(1, len(token_ids) + 1):  # token by token, as the engine streams
        so_far = smollm2_tokenizer.decode(token_ids[:end])
        events += parser.feed(so_far[len(decoded):], token_ids[end - 1 : end])
        decoded = so_far
    events += parser.close()
    assert "".join(e.text.text for e in events if e.HasField("text")) == text
    starts = [e.tool_call_start for e in events if e.HasField("tool_call_start")]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather")]
    arguments = "".join(e.tool_call_delta.delta for e in events if e.HasField("tool_call_delta"))
    assert json.loads(arguments) == {"city": "Paris"}
    assert parser.made_tool_calls
