"""The Responses API response object, built with the ``openai`` SDK's own types.

The object is the Open Responses ``ResponseResource`` (openresponses.org): every
field the spec requires is present with its type from the first event on.
``response_shell`` is the object as it starts (status ``in_progress``, no
output, ``completed_at`` null) with the request's fields echoed with their
effective defaults (instructions, model, tools, tool_choice, text, reasoning,
sampling and penalties, metadata, previous_response_id, safety_identifier,
prompt_cache_key...), never null where the spec wants a number, so clients and
the SDK's ``output_text`` see what they expect. ``settle_status`` ends it
(``completed_at`` once completed), ``usage_of`` maps canonical usage,
``to_json`` is the wire form.
"""

from __future__ import annotations

import time
from typing import Any, Final, Literal, TypeVar

from openai.types.responses import (
    FunctionTool,
    Response,
    ResponseFormatTextJSONSchemaConfig,
    ResponseTextConfig,
    ResponseUsage,
    ToolChoiceFunction,
)
from openai.types.responses.response import IncompleteDetails
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from openai.types.shared import Reasoning, ResponseFormatJSONObject, ResponseFormatText
from pydantic import BaseModel

from fleetgate.router.canonical.fold import UsageCounts
from fleetgate.router.dialects.responses.protocol import FunctionToolChoice, ResponsesRequest, TextFormat
from fleetgate.v1 import replica_pb2 as pb

# What a request that leaves them out gets: the API's defaults (a vLLM model's generation config may
# choose its own temperature and top_p, which the router does not see).
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
DEFAULT_PENALTY = 0.0
DEFAULT_TOP_LOGPROBS = 0
# fleetgate has one service tier.
SERVICE_TIER: Final = "default"


class WireResponse(Response):
    """The SDK's ``Response`` with the Open Responses types: ``created_at`` and ``completed_at`` in
    integer seconds, as OpenAI sends them (the SDK types them as floats; clients with integer fields
    reject ``1700000000.0``), and the penalties the SDK's type leaves out."""

    created_at: int
    completed_at: int | None = None
    presence_penalty: float = DEFAULT_PENALTY
    frequency_penalty: float = DEFAULT_PENALTY


def to_json(model: BaseModel) -> dict[str, Any]:
    """Wire form of an SDK object: fields that were set (explicit nulls included), by alias."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True, serialize_as_any=True)


def response_shell(request: ResponsesRequest, response_id: str, created_at: int) -> Response:
    """The response as it starts: ``in_progress``, empty output, the request echoed."""
    return WireResponse(
        id=response_id,
        object="response",
        created_at=created_at,
        status="in_progress",
        completed_at=None,
        model=request.model,
        output=[],
        error=None,
        incomplete_details=None,
        instructions=request.instructions,
        metadata=request.metadata or {},
        parallel_tool_calls=request.parallel_tool_calls,
        temperature=_or(request.temperature, DEFAULT_TEMPERATURE),
        top_p=_or(request.top_p, DEFAULT_TOP_P),
        presence_penalty=_or(request.presence_penalty, DEFAULT_PENALTY),
        frequency_penalty=_or(request.frequency_penalty, DEFAULT_PENALTY),
        top_logprobs=_or(request.top_logprobs, DEFAULT_TOP_LOGPROBS),
        max_output_tokens=request.max_output_tokens,
        max_tool_calls=request.max_tool_calls,
        previous_response_id=request.previous_response_id,
        tools=[
            FunctionTool(
                type="function",
                name=tool.name,
                description=tool.description,
                parameters=tool.parameters,
                strict=tool.strict,
            )
            for tool in request.function_tools
        ],
        tool_choice=_echo_tool_choice(request),
        text=ResponseTextConfig(format=_echo_format(request.text.format if request.text else None)),
        reasoning=Reasoning(
            effort=request.reasoning.effort if request.reasoning else None,
            # Any string the client sent; the SDK's Reasoning validates it.
            summary=request.reasoning.summary if request.reasoning else None,  # type: ignore[arg-type]
        ),
        store=request.store,  # type: ignore[call-arg]  # an extra field: the SDK's type leaves it out
        truncation=request.truncation or "disabled",
        user=request.user,
        background=False,
        service_tier=SERVICE_TIER,
        safety_identifier=request.safety_identifier,
        prompt_cache_key=request.prompt_cache_key,
        usage=None,
    )


_T = TypeVar("_T")


def _or(value: _T | None, default: _T) -> _T:
    """``value``, or the effective default when the request left it out."""
    return default if value is None else value


def settle_status(response: Response, status: Literal["completed", "incomplete"]) -> None:
    """The final status of a response that did not fail: ``completed`` (now, in ``completed_at``) or
    ``incomplete`` (the output token budget ran out)."""
    response.status = status
    if status == "completed":
        response.completed_at = int(time.time())
    else:
        response.incomplete_details = IncompleteDetails(reason="max_output_tokens")


def _echo_tool_choice(request: ResponsesRequest) -> Any:
    choice = request.tool_choice
    if isinstance(choice, str):
        return choice
    if isinstance(choice, FunctionToolChoice):
        return ToolChoiceFunction(type="function", name=choice.name)
    return "auto"


def _echo_format(fmt: TextFormat | None) -> Any:
    if fmt is None or fmt.type == "text":
        return ResponseFormatText(type="text")
    if fmt.type == "json_object":
        return ResponseFormatJSONObject(type="json_object")
    return ResponseFormatTextJSONSchemaConfig(
        type="json_schema", name=fmt.name or "response", schema=fmt.schema_ or {}, description=fmt.description,
        # The output is constrained to the schema whatever the request says; true unless it said otherwise.
        strict=_or(fmt.strict, True),
    )


def usage_of(usage: pb.Usage) -> ResponseUsage:
    """The response's usage: ``input_tokens`` is the whole prompt, of which ``cached_tokens`` were read from the
    replica's prefix cache and ``cache_write_tokens`` written into it."""
    prompt = UsageCounts.from_pb(usage)
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=prompt.cache_read,
                                                cache_write_tokens=prompt.cache_written),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
    )
