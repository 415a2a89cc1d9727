"""Canonical events -> the Completions stream (pure): ``text_completion`` chunks as plain dicts.

The chunks have the SDK's ``Completion`` shape and share one ``cmpl-…`` id; only
text events make one. The last one carries the ``finish_reason``, then an
optional usage chunk (``choices: []``) and ``data: [DONE]``.
"""

from __future__ import annotations

from typing import Any

from fleetgate.router.canonical import ids
from fleetgate.router.dialects.openai_common import FinishReason, OpenAIStreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.v1 import replica_pb2 as pb


def _choice(text: str, reason: FinishReason | None) -> list[dict[str, Any]]:
    """The one streamed ``choices`` entry (``CompletionChoice``'s fields, in its order)."""
    return [{"finish_reason": reason, "index": 0, "logprobs": None, "text": text}]


class CompletionStreamEncoder(OpenAIStreamEncoder):
    object_type = "text_completion"

    def __init__(self, ctx: RequestContext, *, include_usage: bool) -> None:
        super().__init__(object_id=ids.text_completion_id(ctx.request_id), created=ctx.created, model=ctx.model,
                         include_usage=include_usage)

    def content_chunk(self, kind: str, event: pb.GenerateEvent) -> dict[str, Any] | None:
        return self.chunk(_choice(event.text.text, None)) if kind == "text" else None

    def finish_chunk(self, reason: FinishReason) -> dict[str, Any]:
        return self.chunk(_choice("", reason))
