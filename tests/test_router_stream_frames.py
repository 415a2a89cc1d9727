"""OpenAI stream chunks are exactly the SDK's types, one chunk of frames per canonical event (pure, no I/O).

The chunks are built as plain dicts on the router's hot path; the ``openai``
SDK's ``ChatCompletionChunk`` and ``Completion`` are their schema. The Messages
and Responses events are checked the same way in their translation tests.
"""

from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.completion import Completion as TextCompletion

from fleetgate.core import events as ev
from fleetgate.router.canonical import sse
from fleetgate.router.canonical.fold import CompletionFolder
from fleetgate.router.dialects.chat.dialect import CHAT
from fleetgate.router.dialects.chat.stream import ChatStreamEncoder
from fleetgate.router.dialects.completions.stream import CompletionStreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.v1 import replica_pb2 as pb
from sse_frames import data_payloads, frames, sdk_event

CALL = RequestContext(dialect=CHAT, request_id="req1", model="sim", stream=True, created=1700000000)

TOOL_CALL = [
    ev.started(4, "r1", 32),
    ev.reasoning("Hm."),
    ev.text("Sure"),
    ev.tool_call_start(0, "call_a", "get_weather"),
    ev.tool_call_delta(0, '{"city": '),
    ev.tool_call_delta(0, '"Oslo"}'),
    ev.tool_call_end(0),
    ev.usage(4, 9, cached=2, reasoning_tokens=1),
    ev.finish(pb.Finish.REASON_TOOL_CALLS),
]


def _bodies(encoder: ChatStreamEncoder | CompletionStreamEncoder, events: list[pb.GenerateEvent]) -> list[bytes]:
    """What the encoder gives for each event (given the folder's steps, as the pipeline does), then for ``close()``."""
    folder = CompletionFolder()
    return [*(encoder.encode(event, folder.add(event)) for event in events), encoder.close()]


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_chunks_are_sdk_chunks_one_chunk_of_frames_per_event(include_usage: bool) -> None:
    bodies = _bodies(ChatStreamEncoder(CALL, include_usage=include_usage), TOOL_CALL)
    # started, reasoning, text, tool start, 2 argument deltas: a frame each; tool end and usage: none;
    # the finish: the finish chunk (+ the usage chunk); close: [DONE].
    assert [len(frames(body)) for body in bodies] == [1, 1, 1, 1, 1, 1, 0, 0, 2 if include_usage else 1, 1]
    assert bodies[-1] == sse.DONE
    chunks = [sdk_event(payload, ChatCompletionChunk) for payload in data_payloads(b"".join(bodies))]
    assert {chunk.id for chunk in chunks} == {"chatcmpl-req1"}
    assert all(chunk.object == "chat.completion.chunk" and chunk.created == 1700000000 for chunk in chunks)
    first, reasoning, text, start, *arguments, finish = chunks[:7] if include_usage else chunks
    assert (first.choices[0].delta.role, first.choices[0].delta.content) == ("assistant", "")
    assert reasoning.choices[0].delta.model_extra == {"reasoning": "Hm."}
    assert text.choices[0].delta.content == "Sure"
    call = start.choices[0].delta.tool_calls[0]
    assert (call.index, call.id, call.type, call.function.name, call.function.arguments) == (
        0, "call_a", "function", "get_weather", "")
    assert [a.choices[0].delta.tool_calls[0].function.arguments for a in arguments] == ['{"city": ', '"Oslo"}']
    assert finish.choices[0].finish_reason == "tool_calls" and finish.choices[0].delta.content is None
    if include_usage:
        usage_chunk = chunks[-1]
        assert usage_chunk.choices == [] and usage_chunk.usage.total_tokens == 13
        assert usage_chunk.usage.prompt_tokens_details.cached_tokens == 2
        assert usage_chunk.usage.completion_tokens_details.reasoning_tokens == 1
        assert all("usage" in chunk.model_fields_set and chunk.usage is None for chunk in chunks[:-1])
    else:
        assert all("usage" not in chunk.model_fields_set for chunk in chunks)


def test_completions_chunks_are_sdk_completions() -> None:
    events = [ev.started(2, "r1", 4), ev.text("Hel"), ev.text("lo"), ev.usage(2, 2), ev.finish(pb.Finish.REASON_LENGTH)]
    bodies = _bodies(CompletionStreamEncoder(CALL, include_usage=True), events)
    assert [len(frames(body)) for body in bodies] == [0, 1, 1, 0, 2, 1]
    payloads = data_payloads(b"".join(bodies))
    # The SDK types finish_reason as required; streams carry null in it until the last chunk.
    assert [p["choices"][0]["finish_reason"] for p in payloads[:3]] == [None, None, "length"]
    for payload in payloads[:2]:
        payload["choices"][0]["finish_reason"] = "stop"
    chunks = [sdk_event(payload, TextCompletion) for payload in payloads]
    assert [chunk.choices[0].text for chunk in chunks[:3]] == ["Hel", "lo", ""]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2
    assert {chunk.id for chunk in chunks} == {"cmpl-req1"}


def test_mid_stream_error_is_one_error_chunk_then_done() -> None:
    encoder = ChatStreamEncoder(CALL, include_usage=True)
    bodies = _bodies(
        encoder, [ev.started(2, "r1"), ev.text("a"), ev.error(pb.ERROR_CODE_INTERNAL, "replica r1 failed")]
    )
    assert data_payloads(bodies[2]) == [{"error": {"message": "replica r1 failed", "type": "server_error",
                                                   "param": None, "code": None}}]
    assert bodies[3] == sse.DONE
