"""The Completions dialect adapter (pure): a raw prompt in (``raw_prompt``, no template), text out.

Responses are ``text_completion`` objects, built with the ``openai`` SDK's types
(stream chunks as plain dicts in the same shape). Streamed chunks share one
``cmpl-…`` id, the last one carries the ``finish_reason``, then an optional usage
chunk (``choices: []``) and ``data: [DONE]``. Only text events are rendered (a raw prompt has no tool or
reasoning parsing).
"""

from __future__ import annotations

from typing import Any

from openai.types.completion import Completion as TextCompletion
from openai.types.completion_choice import CompletionChoice

from fleetgate.v1 import replica_pb2 as pb
from fleetgate.router.canonical import ids
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.dialects.base import Dialect, StreamEncoder
from fleetgate.router.pipeline.context import RequestContext
from fleetgate.router.dialects.completions.protocol import CompletionRequest
from fleetgate.router.dialects.openai_common import (
    FinishReason,
    OpenAIStreamEncoder,
    canonical_sampling,
    check_single_choice,
    dump,
    finish_reason,
    usage_body,
)
from fleetgate.router.dialects.openai_shape import OpenAIShape
from fleetgate.router.errors import invalid_request


def to_generate_request(request: CompletionRequest) -> pb.GenerateRequest:
    check_single_choice(request.n)
    if request.best_of not in (None, 1):
        raise invalid_request("best_of is not supported", "best_of")
    if request.echo:
        raise invalid_request("echo is not supported", "echo")
    if request.suffix:
        raise invalid_request("suffix is not supported", "suffix")
    if request.logprobs is not None:
        raise invalid_request("logprobs are not supported", "logprobs")
    if isinstance(request.prompt, list):
        if len(request.prompt) != 1:
            raise invalid_request("prompt must be one string (a list of prompts is not supported)", "prompt")
        prompt = request.prompt[0]
    else:
        prompt = request.prompt
    return pb.GenerateRequest(
        model=request.model, raw_prompt=prompt, sampling=canonical_sampling(request, request.max_tokens)
    )


def render_completion(completion: Completion, ctx: RequestContext) -> dict[str, Any]:
    choice = CompletionChoice(
        index=0, text=completion.text, logprobs=None, finish_reason=finish_reason(completion.finish_reason, False)
    )
    body = TextCompletion(
        id=ids.text_completion_id(ctx.request_id), object="text_completion", created=ctx.created, model=ctx.model,
        choices=[choice], usage=usage_body(completion.usage),
    )
    return dump(body)


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


class CompletionsDialect(OpenAIShape, Dialect[CompletionRequest]):
    name = "completions"
    wire_model = CompletionRequest

    def to_canonical(self, request: CompletionRequest, ctx: RequestContext) -> pb.GenerateRequest:
        return to_generate_request(request)

    def render_json(self, request: CompletionRequest, completion: Completion, ctx: RequestContext) -> dict[str, Any]:
        return render_completion(completion, ctx)

    def stream_encoder(self, request: CompletionRequest, ctx: RequestContext) -> StreamEncoder:
        return CompletionStreamEncoder(ctx, include_usage=request.include_usage)


COMPLETIONS = CompletionsDialect()
