"""Canonical events -> the Chat Completions stream (pure): ``chat.completion.chunk`` frames.

Chunks, the hot path, are plain dicts in the ``openai`` SDK's shape and field
order (``ChatCompletionChunk``; the tests validate them with it), sharing one
id: a first chunk with the assistant role, then ``delta.content`` /
``delta.reasoning`` / ``delta.tool_calls`` (keyed by ``index``; ``id``, ``type`` and
``name`` only in a call's first fragment, ``arguments`` fragments after), a chunk
with the ``finish_reason``, a usage chunk with ``choices: []`` when
``stream_options.include_usage`` is set (every other chunk then has
``usage: null``), and ``data: [DONE]``. A tool the server ran (``enable_tools``) adds one
``event: tool_result`` frame (``tool_results.py``).
"""

from __future__ import annotations

from typing import Any

from fleetgate.router.canonical import ids, sse
from fleetgate.router.canonical.segments import Step
from fleetgate.router.dialects.chat.response import tool_call_id
from fleetgate.router.dialects.chat.tool_results import TOOL_RESULT_EVENT, tool_result
from fleetgate.router.dialects.openai_common import FinishReason, OpenAIStreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.v1 import replica_pb2 as pb


def _choice(delta: dict[str, Any], reason: FinishReason | None = None) -> list[dict[str, Any]]:
    """The one streamed ``choices`` entry (``Choice`` of ``ChatCompletionChunk``)."""
    return [{"delta": delta, "index": 0, "finish_reason": reason, "logprobs": None}]


class ChatStreamEncoder(OpenAIStreamEncoder):
    object_type = "chat.completion.chunk"
    null_usage_on_chunks = True

    def __init__(self, ctx: RequestContext, *, include_usage: bool) -> None:
        super().__init__(object_id=ids.chat_completion_id(ctx.request_id), created=ctx.created, model=ctx.model,
                         include_usage=include_usage)

    def encode(self, event: pb.GenerateEvent, steps: list[Step]) -> bytes:
        if event.HasField("server_tool"):  # a tool the server ran: an extra event (tool_results.py)
            chunk = {**self.chunk([]), "tool_result": tool_result(event.server_tool)}
            return sse.event_frame(TOOL_RESULT_EVENT, chunk)
        return super().encode(event, steps)

    def content_chunk(self, kind: str, event: pb.GenerateEvent) -> dict[str, Any] | None:
        # Deltas in ChoiceDelta's field order; ``reasoning`` is vLLM's extension.
        if kind == "text":
            delta: dict[str, Any] = {"content": event.text.text}
        elif kind == "reasoning":
            delta = {"reasoning": event.reasoning.text}
        elif kind == "tool_call_delta":
            part = event.tool_call_delta
            delta = {"tool_calls": [{"index": part.index, "function": {"arguments": part.delta}}]}
        elif kind == "tool_call_start":
            start = event.tool_call_start
            fragment = {"index": start.index, "id": tool_call_id(start.id),
                        "function": {"arguments": "", "name": start.name}, "type": "function"}
            delta = {"tool_calls": [fragment]}
        elif kind == "started":
            delta = {"content": "", "role": "assistant"}
        else:
            return None
        return self.chunk(_choice(delta))

    def finish_chunk(self, reason: FinishReason) -> dict[str, Any]:
        return self.chunk(_choice({}, reason))
