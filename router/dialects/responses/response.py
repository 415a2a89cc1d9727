"""The Responses API response object, built with the ``openai`` SDK's own types.

``response_shell`` is the object as it starts (status ``in_progress``, no
output) with the request's fields echoed the way OpenAI echoes them
(instructions, model, tools, tool_choice, text, reasoning, sampling, metadata,
previous_response_id...), so clients and the SDK's ``output_text`` see what they
expect. ``usage_of`` maps canonical usage; ``to_json`` is the wire form.
"""

from __future__ import annotations

from typing import Any

from openai.types.responses import (
    FunctionTool,
    Response,
    ResponseFormatTextJSONSchemaConfig,
    ResponseTextConfig,
    ResponseUsage,
    ToolChoiceFunction,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from openai.types.shared import Reasoning, ResponseFormatJSONObject, ResponseFormatText
from pydantic import BaseModel

from fleetgate.v1 import replica_pb2 as pb
from fleetgate.router.dialects.responses.protocol import FunctionToolChoice, ResponsesRequest, TextFormat


class WireResponse(Response):
    """The SDK's ``Response`` with ``created_at`` in integer seconds, as OpenAI sends it
    (the SDK types it as a float; clients with integer fields reject ``1700000000.0``)."""

    created_at: int  # type: ignore[assignment]


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
        model=request.model,
        output=[],
        error=None,
        incomplete_details=None,
        instructions=request.instructions,
        metadata=request.metadata or {},
        parallel_tool_calls=request.parallel_tool_calls,
        temperature=request.temperature,
        top_p=request.top_p,
        max_output_tokens=request.max_output_tokens,
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
            summary=request.reasoning.summary if request.reasoning else None,
        ),
        store=request.store,
        truncation=request.truncation or "disabled",
        user=request.user,
        background=False,
        usage=None,
    )


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
        strict=fmt.strict,
    )


def usage_of(usage: pb.Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=usage.cached_tokens, cache_write_tokens=0),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
    )
