"""Anthropic Messages translation, without I/O: wire request → canonical request, events → stream events.

The end-to-end behaviour (SDK client, router, replicas) is in test_messages_api.py;
these pin the mapping rules that are awkward to reach through a model.
"""

from __future__ import annotations

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import ValidationError

from fleetgate.core import events as ev
from fleetgate.router.canonical.fold import CompletionFolder
from fleetgate.router.dialects.messages import protocol as wire
from fleetgate.router.dialects.messages.request import effort_from_budget, generate_request, prompt_request
from fleetgate.router.dialects.messages.response import message_body
from fleetgate.router.dialects.messages.signature import thinking_signature
from fleetgate.router.dialects.messages.stream import MessageStreamBuilder
from fleetgate.v1 import replica_pb2 as pb
from interleaved_output import INTERLEAVED, INTERLEAVED_SEGMENTS
from sse_frames import sdk_event


def _request(**body) -> wire.MessagesRequest:
    return wire.MessagesRequest.model_validate({"model": "sim", "max_tokens": 64, **body})


def test_max_tokens_is_required():
    with pytest.raises(ValidationError, match="max_tokens"):
        wire.MessagesRequest.model_validate({"model": "sim", "messages": [{"role": "user", "content": "hi"}]})


def test_unknown_fields_are_accepted_and_unsupported_blocks_are_not():
    _request(messages=[{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}], service_tier="auto")
    with pytest.raises(ValidationError):
        _request(messages=[{"role": "user", "content": [{"type": "document", "source": {}}]}])


def test_conversation_maps_to_canonical_messages():
    req = _request(
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [
                {"type": "text", "text": "Weather?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "anything"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "Thanks"},
            ]},
            {"role": "user",
             "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True}]},
        ],
    )
    messages = generate_request(req).messages
    assert [m.role for m in messages] == [
        pb.ROLE_SYSTEM,
        pb.ROLE_USER,
        pb.ROLE_ASSISTANT,
        pb.ROLE_TOOL,
        pb.ROLE_USER,
        pb.ROLE_TOOL,
    ]
    assert messages[0].content[0].text == "Be brief."
    assert [p.WhichOneof("part") for p in messages[1].content] == ["text", "image_url", "image_url"]
    assert messages[1].content[1].image_url == "data:image/png;base64,AAAA"
    assert messages[1].content[2].image_url == "https://example.com/a.png"
    assistant = messages[2]
    assert assistant.reasoning == "Use the tool."
    assert [p.text for p in assistant.content] == ["Checking."]
    assert assistant.tool_calls[0].id == "toolu_1" and orjson.loads(assistant.tool_calls[0].arguments) == {
        "city": "Paris"
    }
    tool = messages[3]
    assert (tool.tool_call_id, tool.name, tool.content[0].text, tool.is_error) == ("toolu_1", "weather", "sunny", False)
    assert messages[5].is_error and messages[5].content[0].text == "boom"


@pytest.mark.parametrize(
    ("choice", "mode", "name", "parallel"),
    [
        (None, pb.ToolChoice.MODE_AUTO, "", True),
        ({"type": "auto", "disable_parallel_tool_use": True}, pb.ToolChoice.MODE_AUTO, "", False),
        ({"type": "any"}, pb.ToolChoice.MODE_REQUIRED, "", True),
        ({"type": "tool", "name": "weather"}, pb.ToolChoice.MODE_NAMED, "weather", True),
        ({"type": "none"}, pb.ToolChoice.MODE_NONE, "", True),
    ],
)
def test_tool_choice_mapping(choice, mode, name, parallel):
    tools = [{"name": "weather", "description": "d", "input_schema": {"type": "object", "properties": {}}}]
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
    if choice is not None:
        body["tool_choice"] = choice
    out = generate_request(_request(**body))
    assert (out.tool_choice.mode, out.tool_choice.name, out.parallel_tool_calls) == (mode, name, parallel)
    assert orjson.loads(out.tools[0].parameters_json) == {"type": "object", "properties": {}}


def test_thinking_and_sampling_mapping():
    base = {"messages": [{"role": "user", "content": "hi"}]}
    off = generate_request(_request(**base, thinking={"type": "disabled"}))
    assert off.HasField("enable_reasoning") and not off.enable_reasoning
    unset = generate_request(_request(**base))
    assert not unset.HasField("enable_reasoning") and unset.reasoning_effort == ""
    on = generate_request(_request(**base, thinking={"type": "enabled", "budget_tokens": 10000},
                                   stop_sequences=["END"], temperature=0, top_p=0.5, top_k=3))
    assert on.enable_reasoning and on.reasoning_effort == "medium"
    assert (on.sampling.max_tokens, list(on.sampling.stop), on.sampling.temperature, on.sampling.top_k) == (
        64,
        ["END"],
        0,
        3,
    )
    assert [effort_from_budget(b) for b in (1024, 4000, 4096, 16383, 16384, 31999)] == [
        "low", "low", "medium", "medium", "high", "high"]
    effort = prompt_request(wire.CountTokensRequest.model_validate(
        {**base, "model": "sim", "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}))
    assert effort.enable_reasoning and effort.reasoning_effort == "high"


def _play(events: list[pb.GenerateEvent]) -> tuple[list[str], Message]:
    """Stream the events through the builder and the SDK's accumulator; check the folded JSON agrees."""
    builder = MessageStreamBuilder("msg_test", "sim")
    folder = CompletionFolder()
    names: list[str] = []
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        for name, payload in builder.feed(folder.add(event)):
            assert name == payload["type"]
            names.append(name)
            parsed = sdk_event(payload, RawMessageStreamEvent)
            snapshot = accumulate_event(event=parsed, current_snapshot=snapshot, json_bufs=json_bufs)
    streamed = Message.model_validate(snapshot.model_dump())
    assert streamed == Message.model_validate(message_body("msg_test", "sim", folder.completion))
    return names, streamed


def test_stream_sequence_thinking_then_text():
    names, message = _play([
        ev.started(12, "r1", 64), ev.reasoning("Let me "), ev.reasoning("think."), ev.text("Hello"), ev.text(" there"),
        ev.usage(12, 7, cached=4), ev.finish(ev.Reason.REASON_STOP),
    ])
    assert names == [
        "message_start",
        # the thinking block: two thinking deltas and the signature
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Let me think."
    assert thinking.signature == thinking_signature("Let me think.")
    assert text.type == "text" and text.text == "Hello there"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = message.usage
    assert (
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
        usage.output_tokens,
    ) == (8, 4, 0, 7)


def test_stream_keeps_blocks_contiguous_when_tool_calls_interleave():
    names, message = _play([
        ev.started(5, "r1", 64),
        ev.tool_call_start(0, "call_a", "f"), ev.tool_call_delta(0, '{"x"'),
        ev.tool_call_start(1, "call_b", "g"), ev.tool_call_delta(1, '{"y": 2}'), ev.tool_call_delta(0, ": 1}"),
        ev.tool_call_end(0), ev.tool_call_end(1), ev.usage(5, 9), ev.finish(ev.Reason.REASON_TOOL_CALLS),
    ])
    assert [(b.type, b.id, b.name, b.input) for b in message.content] == [
        ("tool_use", "toolu_a", "f", {"x": 1}), ("tool_use", "toolu_b", "g", {"y": 2})]
    assert names[1:4] == ["content_block_start", "content_block_delta", "content_block_delta"]
    assert message.stop_reason == "tool_use"


def test_interleaved_output_is_the_same_blocks_streamed_and_folded():
    """reasoning -> text -> tool call -> text -> reasoning -> text -> tool call: one block each, both ways."""
    names, message = _play(INTERLEAVED)
    kinds = {"thinking": "reasoning", "text": "text", "tool_use": "tool_call"}
    assert [kinds[block.type] for block in message.content] == [kind for kind, _ in INTERLEAVED_SEGMENTS]
    assert [block.thinking for block in message.content if block.type == "thinking"] == ["Plan A.", "Then B."]
    assert [block.text for block in message.content if block.type == "text"] == ["Let me ", "check.", "Done!"]
    assert [(b.id, b.input) for b in message.content if b.type == "tool_use"] == [
        ("toolu_weather", {"city": "Paris"}), ("toolu_time", {})]
    assert names.count("content_block_start") == names.count("content_block_stop") == len(INTERLEAVED_SEGMENTS)
    assert message.stop_reason == "tool_use"


def test_stream_stop_sequence_and_max_tokens():
    _, stopped = _play([ev.started(3, "r1", 8), ev.text("a"), ev.usage(3, 1),
                        ev.finish(ev.Reason.REASON_STOP_SEQUENCE, stop_sequence="END")])
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "END")
    _, cut = _play([ev.started(3, "r1", 1), ev.text("a"), ev.usage(3, 1), ev.finish(ev.Reason.REASON_LENGTH)])
    assert (cut.stop_reason, cut.stop_sequence) == ("max_tokens", None)


def test_stream_error_after_start_is_an_anthropic_error_event():
    builder = MessageStreamBuilder("msg_test", "sim")
    folder = CompletionFolder()
    events = [ev.started(3, "r1", 8), ev.text("a"), ev.error(pb.ERROR_CODE_INTERNAL, "replica r1 failed mid-stream")]
    frames = [frame for event in events for frame in builder.feed(folder.add(event))]
    assert [name for name, _ in frames] == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert frames[-1][1] == {"type": "error", "error": {"type": "api_error", "message": "replica r1 failed mid-stream"}}
