"""Wire schema of ``POST /v1/chat/completions`` requests (pydantic v2; unknown fields accepted and ignored).

Follows the ``openai`` SDK's ``CompletionCreateParams``. Messages are one model
with a ``role`` literal (rather than a union per role) so validation errors name
plain paths like ``messages[2].content``; role-specific rules (a tool message
needs ``tool_call_id``, images only in user messages) are checked in ``request.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from fleetgate.router.canonical.bounds import TokenLimit
from fleetgate.router.dialects.openai_common import OpenAISamplingFields, Wire
from fleetgate.router.server_tools.shorthand import ServerToolFields


class TextPart(Wire):
    type: Literal["text"]
    text: str


class ImageUrl(Wire):
    url: str
    detail: str | None = None


class ImagePart(Wire):
    type: Literal["image_url"]
    image_url: ImageUrl | str


class RefusalPart(Wire):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[TextPart | ImagePart | RefusalPart, Field(discriminator="type")]


class FunctionCall(Wire):
    name: str
    # A JSON-encoded object (some clients send the object itself).
    arguments: str | dict[str, Any] = ""


class ToolCall(Wire):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(Wire):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    # Assistant reasoning replayed from history (vLLM's field, and the older reasoning_content).
    reasoning: str | None = None
    reasoning_content: str | None = None


class FunctionDefinition(Wire):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(Wire):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(Wire):
    name: str


class NamedToolChoice(Wire):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(Wire):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(Wire):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class ChatCompletionRequest(OpenAISamplingFields, ServerToolFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: TokenLimit | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None
    logprobs: bool | None = None
    # Session hints (router.canonical.session_hints); not forwarded.
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
