"""A folded completion -> the non-streaming Chat Completions answer (pure).

One ``chat.completion``, built with the ``openai`` SDK's types, with
``message.content``, ``message.reasoning`` and ``message.tool_calls``, and the
``tool_results`` of the tools the server ran (``tool_results.py``). The
stream of the same answer is ``stream.py``.
"""

from __future__ import annotations

from typing import Any

from openai.types.chat.chat_completion import ChatCompletion, Choice
from openai.types.chat.chat_completion_message import ChatCompletionMessage
from openai.types.chat.chat_completion_message_function_tool_call import ChatCompletionMessageFunctionToolCall, Function
from openai.types.chat.chat_completion_message_tool_call import ChatCompletionMessageToolCallUnion
from openai.types.completion_usage import CompletionUsage

from fleetgate.core.tool_call_ids import new_tool_call_id
from fleetgate.router.canonical import ids
from fleetgate.router.canonical.fold import Completion
from fleetgate.router.dialects.chat.tool_results import tool_result
from fleetgate.router.dialects.openai_common import dump, finish_reason, usage_body
from fleetgate.router.pipeline.context import RequestContext


def tool_call_id(replica_id: str) -> str:
    """The replica's call id, or a fresh ``call_…`` when it sent none."""
    return replica_id or new_tool_call_id()


def render_completion(completion: Completion, ctx: RequestContext) -> dict[str, Any]:
    tool_calls: list[ChatCompletionMessageToolCallUnion] = [
        ChatCompletionMessageFunctionToolCall(
            id=tool_call_id(c.id), type="function", function=Function(name=c.name, arguments=c.arguments)
        )
        for c in completion.tool_calls
    ]
    message = ChatCompletionMessage(
        role="assistant",
        content=completion.text if completion.text or not tool_calls else None,
        tool_calls=tool_calls or None,
        # An extra field (vLLM's name for it), which the SDK's type leaves out.
        reasoning=completion.reasoning or None,  # type: ignore[call-arg]
    )
    body = ChatCompletion(
        id=ids.chat_completion_id(ctx.request_id),
        object="chat.completion",
        created=ctx.created,
        model=ctx.model,
        choices=[
            Choice(
                index=0,
                message=message,
                finish_reason=finish_reason(completion.finish_reason, bool(tool_calls)),
                logprobs=None,
            )
        ],
        usage=CompletionUsage.model_validate(usage_body(completion.usage)),
    )
    answer = dump(body)
    if completion.server_tools:
        answer["tool_results"] = [tool_result(call) for call in completion.server_tools]
    return answer
