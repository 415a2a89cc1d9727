"""The fold keeps the output as ordered segments, and Chat Completions streams what it folds (pure, no I/O).

The Messages and Responses counterparts (blocks and items built from the same
segments) are in test_messages_translation.py and test_responses_translation.py.
"""

from __future__ import annotations

from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fleetgate.core import events as ev
from fleetgate.router.canonical import sse
from fleetgate.router.canonical.fold import CompletionFolder
from fleetgate.router.dialects.chat.dialect import CHAT
from fleetgate.router.dialects.chat.response import render_completion
from fleetgate.router.dialects.chat.stream import ChatStreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.v1 import replica_pb2 as pb
from interleaved_output import INTERLEAVED, INTERLEAVED_SEGMENTS, WEATHER_ARGUMENTS, folded
from sse_frames import data_payloads, sdk_event


def test_fold_keeps_ordered_segments_and_the_joined_conveniences():
    completion = folded(INTERLEAVED)
    assert [(s.kind, s.text) for s in completion.segments] == INTERLEAVED_SEGMENTS
    assert [s.position for s in completion.segments] == list(range(len(INTERLEAVED_SEGMENTS)))
    assert completion.text == "Let me check.Done!" and completion.reasoning == "Plan A.Then B."
    assert [(c.index, c.id, c.name, c.arguments) for c in completion.tool_calls] == [
        (0, "call_weather", "get_weather", WEATHER_ARGUMENTS), (1, "call_time", "get_time", "")]


def test_empty_deltas_open_nothing_and_stray_arguments_are_dropped():
    completion = folded([
        ev.started(1, "r"), ev.text(""), ev.reasoning("hm"), ev.text(""), ev.reasoning("m"),
        ev.tool_call_delta(5, "{}"), ev.tool_call_start(0, "c", "f"), ev.tool_call_delta(1, "x"), ev.tool_call_end(0),
        ev.tool_call_delta(0, "late"), ev.finish(pb.Finish.REASON_TOOL_CALLS),
    ])
    assert [(s.kind, s.text) for s in completion.segments] == [("reasoning", "hmm"), ("tool_call", "")]


def test_chat_stream_accumulated_by_the_sdk_equals_the_folded_completion():
    call = RequestContext(dialect=CHAT, request_id="req1", model="sim", stream=True, created=1700000000)
    encoder = ChatStreamEncoder(call, include_usage=True)
    folder = CompletionFolder()
    body = b"".join(encoder.encode(event, folder.add(event)) for event in INTERLEAVED) + encoder.close()
    assert body.endswith(b"\n\n" + sse.DONE)
    state = ChatCompletionStreamState()
    for payload in data_payloads(body):
        state.handle_chunk(sdk_event(payload, ChatCompletionChunk))
    # Without what only the SDK's accumulator adds (parsed content, tool-call fragment indexes).
    sdk_only = {"index": True, "function": {"parsed_arguments"}}
    streamed = state.get_final_completion().model_dump(
        mode="json", exclude_none=True,
        exclude={"choices": {"__all__": {"message": {"parsed": True, "tool_calls": {"__all__": sdk_only}}}}},
    )
    streamed["object"] = "chat.completion"  # the accumulator keeps the chunks' object type
    body = ChatCompletion.model_validate(render_completion(folded(INTERLEAVED), call)).model_dump(
        mode="json", exclude_none=True
    )
    assert streamed == body
    message = body["choices"][0]["message"]
    assert (message["content"], message["reasoning"]) == ("Let me check.Done!", "Plan A.Then B.")
    assert [c["function"]["arguments"] for c in message["tool_calls"]] == [WEATHER_ARGUMENTS, ""]
