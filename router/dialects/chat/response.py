"""Canonical completion / events -> Chat Completions responses (pure), built with the ``openai`` SDK's types.

Non-streaming: one ``chat.completion`` with ``message.content``, ``message.reasoning``
and ``message.tool_calls``. Streaming: ``chat.completion.chunk`` objects sharing
one id: a first chunk with the assistant role, then ``delta.content`` /
``delta.reasoning`` / ``delta.tool_calls`` (keyed by ``index``; ``id``, ``type`` and
``name`` only in a call's first fragment, ``arguments`` fragments after), a chunk
with the ``finish_reason``, a usage chunk with ``choices: []`` when
``stream_options.include_usage`` is set (every other chunk then has
``usage: null``), and ``data: [DONE]``.
"""

from __future__ import annotations

from typing import Any

from openai.types.chat.chat_completion import ChatCompletion, Choice
from openai.types.chat.chat_completion_chunk import (
    ChatCompletionChunk,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_message import ChatCompletionMessage
from openai.types.chat.chat_completion_message_function_tool_call import ChatCompletionMessageFunctionToolCall, Function
from openai.types.completion_usage import CompletionUsage

from fleetgate.v1 import replica_pb2 as pb
from router.canonical import ids, sse
from router.canonical.fold import Completion
from router.dialects.base import CallContext
from router.dialects.openai_common import FinishReason, OpenAIStreamEncoder, dump, finish_reason, usage_model


def tool_call_id(replica_id: str) -> str:
    """The replica's call id, or a fresh ``call_…`` when it sent none."""
    return replica_id or ids.new_tool_call_id()


def render_completion(completion: Completion, call: CallContext) -> dict[str, Any]:
    tool_calls = [
        ChatCompletionMessageFunctionToolCall(
            id=tool_call_id(c.id), type="function", function=Function(name=c.name, arguments=c.arguments)
        )
        for c in completion.tool_calls
    ]
    message = ChatCompletionMessage(
        role="assistant",
        content=completion.text if completion.text or not tool_calls else None,
        tool_calls=tool_calls or None,
        reasoning=completion.reasoning or None,
    )
    body = ChatCompletion(
        id=ids.chat_completion_id(call.request_id),
        object="chat.completion",
        created=call.created,
        model=call.model,
        choices=[
            Choice(
                index=0,
                message=message,
                finish_reason=finish_reason(completion.finish_reason, bool(tool_calls)),
                logprobs=None,
            )
        ],
        usage=usage_model(completion.usage),
    )
    return dump(body)


class ChatStreamEncoder(OpenAIStreamEncoder):
    def __init__(self, call: CallContext, *, include_usage: bool) -> None:
        super().__init__(include_usage=include_usage)
        self._id = ids.chat_completion_id(call.request_id)
        self._created = call.created
        self._model = call.model

    def _chunk(self, choices: list[ChunkChoice], usage: CompletionUsage | None = None) -> dict[str, Any]:
        chunk = ChatCompletionChunk(
            id=self._id, object="chat.completion.chunk", created=self._created, model=self._model, choices=choices
        )
        if self.include_usage:
            chunk.usage = usage
        return dump(chunk)

    def _delta(self, delta: ChoiceDelta, reason: FinishReason | None = None) -> dict[str, Any]:
        return self._chunk([ChunkChoice(index=0, delta=delta, finish_reason=reason, logprobs=None)])

    def content_frames(self, event: pb.GenerateEvent) -> list[bytes]:
        kind = event.WhichOneof("event")
        if kind == "started":
            delta = ChoiceDelta(role="assistant", content="")
        elif kind == "text":
            delta = ChoiceDelta(content=event.text.text)
        elif kind == "reasoning":
            delta = ChoiceDelta(reasoning=event.reasoning.text)
        elif kind == "tool_call_start":
            start = event.tool_call_start
            fragment = ChoiceDeltaToolCall(
                index=start.index,
                id=tool_call_id(start.id),
                type="function",
                function=ChoiceDeltaToolCallFunction(name=start.name, arguments=""),
            )
            delta = ChoiceDelta(tool_calls=[fragment])
        elif kind == "tool_call_delta":
            part = event.tool_call_delta
            fragment = ChoiceDeltaToolCall(index=part.index, function=ChoiceDeltaToolCallFunction(arguments=part.delta))
            delta = ChoiceDelta(tool_calls=[fragment])
        else:
            return []
        return [sse.data_frame(self._delta(delta))]

    def finish_chunk(self, reason: FinishReason) -> dict[str, Any]:
        return self._delta(ChoiceDelta(), reason)

    def usage_chunk(self, usage: CompletionUsage) -> dict[str, Any]:
        return self._chunk([], usage)
