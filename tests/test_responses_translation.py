"""OpenAI Responses translation, without I/O: wire request -> canonical request, events -> stream events.

The end-to-end behaviour (SDK client, router, Redis, sim replicas) is in
test_responses_api.py; these pin the mapping rules that are awkward to reach
through a model. Stream events are checked by the SDK's own stream accumulator.
"""

from __future__ import annotations

import time

import openai
import pytest
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from fleetgate.core import events as ev
from fleetgate.router.canonical.contiguous import ContiguousEvents
from fleetgate.router.canonical.fold import CompletionFolder
from fleetgate.router.dialects.responses.conversation import normalize_items, parse_items, to_messages
from fleetgate.router.dialects.responses.dialect import RESPONSES, ResponsesDialect
from fleetgate.router.dialects.responses.protocol import ResponsesRequest, UnknownItem
from fleetgate.router.dialects.responses.request import to_generate_request
from fleetgate.router.dialects.responses.response import response_shell, to_json
from fleetgate.router.dialects.responses.stream import ResponseBuilder
from fleetgate.router.errors import ApiError
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.v1 import replica_pb2 as pb
from interleaved_output import INTERLEAVED, INTERLEAVED_SEGMENTS, folded
from sse_frames import sdk_event

Reason = pb.Finish.Reason


def _request(**body) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "sim", **body})


def _canonical(request: ResponsesRequest, history: list[dict] | None = None) -> pb.GenerateRequest:
    return to_generate_request(request, [*(history or []), *normalize_items(request.items)], "req-1")


def _texts(message: pb.Message) -> list[str]:
    return [part.text for part in message.content]


# ------------------------------------------------------------------ request


def test_string_input_is_one_user_message_and_unknown_fields_are_accepted():
    generate = _canonical(_request(input="hi", service_tier="auto", prompt_cache_key="k"))
    assert [m.role for m in generate.messages] == [pb.ROLE_USER]
    assert _texts(generate.messages[0]) == ["hi"]


def test_instructions_system_and_developer_merge_into_one_leading_system_message():
    request = _request(
        instructions="Be brief.",
        input=[
            {"role": "user", "content": "one"},
            {"role": "developer", "content": [{"type": "input_text", "text": "Use metric units."}]},
            {"type": "message", "role": "system", "content": "No emoji."},
            {"role": "user", "content": "two"},
        ],
    )
    messages = _canonical(request).messages
    assert [m.role for m in messages] == [pb.ROLE_SYSTEM, pb.ROLE_USER, pb.ROLE_USER]
    assert _texts(messages[0]) == ["Be brief.\n\nUse metric units.\n\nNo emoji."]


def test_function_call_round_trip_and_reasoning_replay():
    request = _request(
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather?"},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                ],
            },
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "Use it."}],
            },
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}'},
            {"type": "function_call", "call_id": "call_2", "name": "time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "noon"}]},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny at noon."}]},
        ]
    )
    messages = _canonical(request).messages
    assert [m.role for m in messages] == [
        pb.ROLE_USER,
        pb.ROLE_ASSISTANT,
        pb.ROLE_TOOL,
        pb.ROLE_TOOL,
        pb.ROLE_ASSISTANT,
    ]
    assert messages[0].content[1].image_url == "https://example.com/a.png"
    call_turn = messages[1]
    assert call_turn.reasoning == "Use it."
    assert [(c.id, c.name, c.arguments) for c in call_turn.tool_calls] == [
        ("call_1", "weather", '{"city":"Paris"}'), ("call_2", "time", "{}")]
    assert (messages[2].tool_call_id, messages[2].name, _texts(messages[2])) == ("call_1", "weather", ["sunny"])
    assert (messages[3].tool_call_id, messages[3].name, _texts(messages[3])) == ("call_2", "time", ["noon"])
    assert _texts(messages[4]) == ["Sunny at noon."]


def test_unknown_items_and_parts_are_dropped_and_hosted_tools_ignored():
    request = _request(
        input=[
            {"type": "file_search_call", "id": "fs_1", "status": "completed"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}, {"type": "input_audio", "data": "x"}]},
        ],
        tools=[{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {"type": "object"}}],
        tool_choice={"type": "allowed_tools", "mode": "auto", "tools": []},
    )
    assert isinstance(request.items[0], UnknownItem)
    conversation = normalize_items(request.items)
    # A search the server ran is kept with the conversation (an earlier answer's item), not shown to the model.
    assert [item["type"] for item in conversation] == ["web_search_call", "message"]
    assert conversation[1]["content"] == [{"type": "input_text", "text": "hi"}]
    generate = to_generate_request(request, conversation, "req-1")
    assert [t.name for t in generate.tools] == ["f"]
    assert generate.tool_choice.mode == pb.ToolChoice.MODE_AUTO


def test_tools_tool_choice_format_reasoning_and_sampling():
    generate = _canonical(_request(
        input="x",
        tools=[{"type": "function", "name": "get", "description": "Get it", "strict": True,
                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}],
        tool_choice={"type": "function", "name": "get"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}},
        reasoning={"effort": "minimal"},
        max_output_tokens=12, temperature=0.5, top_p=0.9,
    ))
    assert (generate.tools[0].name, generate.tools[0].description) == ("get", "Get it")
    assert (generate.tool_choice.mode, generate.tool_choice.name) == (pb.ToolChoice.MODE_NAMED, "get")
    assert generate.parallel_tool_calls is False
    assert (generate.response_format.kind, generate.response_format.name) == (
        pb.ResponseFormat.KIND_JSON_SCHEMA,
        "answer",
    )
    assert generate.reasoning_effort == "low"
    assert generate.sampling.max_tokens == 12 and generate.sampling.temperature == 0.5
    assert not _canonical(_request(input="x", reasoning={"effort": "none"})).enable_reasoning
    assert _canonical(_request(input="x", text={"format": {"type": "json_object"}})).response_format.kind == \
        pb.ResponseFormat.KIND_JSON_OBJECT


@pytest.mark.parametrize("body, param", [
    ({"tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
    ({"tools": [{"type": "function", "name": "bad name!"}]}, "tools[0].name"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}, "input[0].content[0]"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]}]}, "input[0].content[0]"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 12}}}}, "text.format.schema"),
])
def test_invalid_requests_are_400_naming_the_field(body, param):
    with pytest.raises(ApiError) as caught:
        _canonical(_request(**{"input": "x", **body}))
    assert (caught.value.status, caught.value.param) == (400, param)


def test_stored_conversation_round_trips_through_normalize_and_parse():
    request = _request(input=[
        {"role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ])
    stored = normalize_items(request.items)
    assert [item["id"][:3] for item in stored] == ["msg", "fc_", "fco"]
    assert all(item["status"] == "completed" for item in stored)
    assert normalize_items(parse_items(stored)) == stored
    assert to_messages(None, parse_items(stored)) == to_messages(None, request.items)


# ------------------------------------------------------------------ events -> stream


def _run(events: list[pb.GenerateEvent], **body) -> tuple[list, ResponseBuilder]:
    """The builder's events for ``events``, each checked to be exactly an SDK stream event, as SDK objects."""
    builder = ResponseBuilder(response_shell(_request(input="hi", **body), "resp_test", int(time.time())))
    folder = CompletionFolder()
    out = builder.open()
    for event in events:
        steps = folder.add(event)
        out.extend(builder.finish(steps) if event.HasField("finish") else builder.feed(steps))
    assert all(name == payload["type"] for name, payload in out)
    return [sdk_event(payload, ResponseStreamEvent) for _, payload in out], builder


def _sdk_final(out: list) -> Response:
    """Feed the wire events to the SDK's own stream accumulator, as `client.responses.stream` does;
    the final response it parses, without the SDK's own parsed_* additions."""
    state = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    for event in out:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=to_json(event)))
    assert state._completed_response is not None
    return Response.model_validate(
        state._completed_response.model_dump(exclude={"output": {"__all__": {"parsed_arguments"}}}, exclude_none=True))


def _same(a: Response, b: Response) -> bool:
    return a.model_dump(mode="json", exclude_none=True) == b.model_dump(mode="json", exclude_none=True)


def test_stream_sequence_reasoning_text_and_tool_call():
    out, builder = _run([
        ev.started(7, "replica-a", 64), ev.reasoning("Think"), ev.reasoning("ing."), ev.text("Hel"), ev.text("lo"),
        ev.tool_call_start(0, "call_x", "get"), ev.tool_call_delta(0, '{"id":'), ev.tool_call_delta(0, '"1"}'),
        ev.tool_call_end(0), ev.usage(7, 9, cached=3, reasoning_tokens=2), ev.finish(Reason.REASON_TOOL_CALLS),
    ])
    assert [e.type for e in out] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.delta", "response.reasoning_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed",
    ]
    assert [e.sequence_number for e in out] == list(range(len(out)))
    response = builder.response
    assert builder.done and builder.replica_id == "replica-a"
    assert response.status == "completed" and response.output_text == "Hello"
    reasoning, message, call = response.output
    assert reasoning.content[0].text == "Thinking."
    assert (call.call_id, call.name, call.arguments) == ("call_x", "get", '{"id":"1"}')
    done_ids = [e.item.id for e in out if e.type == "response.output_item.done"]
    assert done_ids == [item.id for item in response.output]
    assert response.usage.model_dump() == {
        "input_tokens": 7, "output_tokens": 9, "total_tokens": 16,
        "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0, "cache_write_tokens_details": None},
        "output_tokens_details": {"reasoning_tokens": 2},
    }
    assert _same(_sdk_final(out), response)


def test_length_finish_is_incomplete_with_the_reason():
    out, builder = _run(
        [ev.started(3, "r", 2), ev.text("a"), ev.text(" b"), ev.usage(3, 2), ev.finish(Reason.REASON_LENGTH)],
        max_output_tokens=2,
    )
    assert out[-1].type == "response.incomplete"
    response = builder.response
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete" and response.max_output_tokens == 2


def test_mid_stream_error_is_an_error_event_then_failed():
    out, builder = _run([ev.started(3, "r"), ev.text("partial"),
                         ev.error(pb.ERROR_CODE_INTERNAL, "replica went away")])
    assert [e.type for e in out[-4:]] == ["response.content_part.done", "response.output_item.done", "error",
                                          "response.failed"]
    assert out[-2].message == "replica went away"
    assert [e.sequence_number for e in out] == list(range(len(out)))
    assert builder.response.status == "failed" and builder.response.error.code == "server_error"


def test_text_interleaved_with_a_tool_call_waits_until_the_call_ends():
    ordered = ContiguousEvents()
    arrived = [ev.tool_call_start(0, "a", "f"), ev.text("x"), ev.tool_call_start(1, "b", "g"),
               ev.tool_call_delta(0, "{}"), ev.tool_call_delta(1, "{}"), ev.tool_call_end(0), ev.tool_call_end(1),
               ev.finish(Reason.REASON_TOOL_CALLS)]
    released = [e for event in arrived for e in ordered.feed(event)]
    assert [e.WhichOneof("event") for e in released] == [
        "tool_call_start", "tool_call_delta", "tool_call_end", "text",
        "tool_call_start", "tool_call_delta", "tool_call_end", "finish"]
    out, builder = _run([ev.started(1, "r"), *arrived])
    assert [item.type for item in builder.response.output] == ["function_call", "message", "function_call"]
    assert _same(_sdk_final(out), builder.response)


def _without_ids(response: Response) -> dict:
    data = response.model_dump(mode="json", exclude_none=True, exclude={"id", "created_at", "completed_at"})
    for item in data["output"]:
        item.pop("id")
    return data


def test_interleaved_output_is_the_same_items_streamed_and_folded():
    """reasoning -> text -> tool call -> text -> reasoning -> text -> tool call: one item each, both ways."""
    out, builder = _run(INTERLEAVED)
    streamed = _sdk_final(out)
    assert _same(streamed, builder.response)
    call = RequestContext(dialect=RESPONSES, request_id="req1", model="sim")
    non_streamed = ResponsesDialect().final_response(_request(input="hi"), folded(INTERLEAVED), call)
    assert _without_ids(non_streamed) == _without_ids(streamed)
    kinds = {"reasoning": "reasoning", "message": "text", "function_call": "tool_call"}
    assert [kinds[item.type] for item in streamed.output] == [kind for kind, _ in INTERLEAVED_SEGMENTS]
    assert [item.content[0].text for item in streamed.output if item.type == "reasoning"] == ["Plan A.", "Then B."]
    assert streamed.output_text == "Let me check.Done!"
    assert [(i.call_id, i.arguments) for i in streamed.output if i.type == "function_call"] == [
        ("call_weather", '{"city": "Paris"}'), ("call_time", "")]


def test_echoed_request_fields():
    response = response_shell(_request(
        input="x", instructions="Be brief.", metadata={"k": "v"}, temperature=0.2, store=False,
        tools=[{"type": "function", "name": "f"}, {"type": "web_search"}], tool_choice="required",
        text={"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
        reasoning={"effort": "high"}, previous_response_id="resp_prev", user="u1",
    ), "resp_1", 123)
    wire = to_json(response)
    assert wire["object"] == "response" and wire["status"] == "in_progress" and wire["output"] == []
    assert (wire["instructions"], wire["metadata"], wire["temperature"], wire["store"]) == (
        "Be brief.",
        {"k": "v"},
        0.2,
        False,
    )
    assert [t["name"] for t in wire["tools"]] == ["f"] and wire["tool_choice"] == "required"
    assert wire["text"]["format"] == {"type": "json_schema", "name": "n", "schema": {"type": "object"},
                                      "description": None, "strict": True}
    assert wire["reasoning"]["effort"] == "high" and wire["previous_response_id"] == "resp_prev"
    Response.model_validate(wire)
