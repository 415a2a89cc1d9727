"""A folded completion -> the non-streaming ``text_completion`` (pure), built with the ``openai`` SDK's types.

Only the text is rendered: a raw prompt has no tool or reasoning parsing.
"""

from __future__ import annotations

from typing import Any

from openai.types.completion import Completion as TextCompletion
from openai.types.completion_choice import CompletionChoice
from openai.types.completion_usage import CompletionUsage

from fleetgate.router.canonical import ids
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.dialects.openai_common import dump, finish_reason, usage_body
from fleetgate.router.pipeline.context import RequestContext


def render_completion(completion: Completion, ctx: RequestContext) -> dict[str, Any]:
    # A raw prompt has no tool-call parsing: the reason is never tool_calls.
    reason = finish_reason(completion.finish_reason, False)
    choice = CompletionChoice(index=0, text=completion.text, logprobs=None, finish_reason=reason)  # type: ignore[arg-type]
    body = TextCompletion(
        id=ids.text_completion_id(ctx.request_id), object="text_completion", created=ctx.created, model=ctx.model,
        choices=[choice], usage=CompletionUsage.model_validate(usage_body(completion.usage)),
    )
    return dump(body)
