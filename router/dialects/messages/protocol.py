"""Wire schema of the Anthropic Messages API requests (``POST /v1/messages``, ``/count_tokens``).

Pydantic v2 models of what clients send, following ``anthropic.types`` (the SDK's
``MessageCreateParams``). Only validation lives here: unknown extra fields are
accepted and ignored (clients send ``service_tier``, ``context_management``, beta
fields, ``cache_control`` on any block ...), while a block or tool type fleetgate
cannot serve is a validation error (400 ``invalid_request_error``). Translation to
the canonical request is in ``request.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from fleetgate.router.canonical.bounds import TokenLimit, TopK
from fleetgate.router.server_tools.shorthand import ServerToolFields


class _Wire(BaseModel):
    """Every wire object: extra fields allowed (and ignored)."""

    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- content blocks


class TextBlock(_Wire):
    type: Literal["text"]
    text: str


class Base64ImageSource(_Wire):
    type: Literal["base64"]
    media_type: str
    data: str


class UrlImageSource(_Wire):
    type: Literal["url"]
    url: str


ImageSource = Annotated[Base64ImageSource | UrlImageSource, Field(discriminator="type")]


class ImageBlock(_Wire):
    type: Literal["image"]
    source: ImageSource


class ToolUseBlock(_Wire):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


ToolResultContentBlock = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolResultBlock(_Wire):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ToolResultContentBlock] = ""
    is_error: bool = False


class ThinkingBlock(_Wire):
    type: Literal["thinking"]
    thinking: str
    # Opaque; fleetgate's own signatures are described in signature.py. Not verified.
    signature: str = ""


class RedactedThinkingBlock(_Wire):
    type: Literal["redacted_thinking"]
    data: str


class ServerToolUseBlock(_Wire):
    """A server-side tool call of an earlier answer (``router.server_tools``), replayed in the history."""

    type: Literal["server_tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ServerToolResultBlock(_Wire):
    """The result of a ``server_tool_use`` block, replayed in the history."""

    type: Literal["code_execution_tool_result", "bash_code_execution_tool_result", "web_search_tool_result"]
    tool_use_id: str
    content: Any = None


UserContentBlock = Annotated[TextBlock | ImageBlock | ToolResultBlock, Field(discriminator="type")]
AssistantContentBlock = Annotated[
    TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock | ServerToolUseBlock | ServerToolResultBlock,
    Field(discriminator="type"),
]


class UserMessage(_Wire):
    role: Literal["user"]
    content: str | list[UserContentBlock]


class AssistantMessage(_Wire):
    role: Literal["assistant"]
    content: str | list[AssistantContentBlock]


class SystemMessage(_Wire):
    """A system turn inside ``messages`` (Claude Code's ``mid-conversation-system`` beta)."""

    role: Literal["system"]
    content: str | list[TextBlock]


InputMessage = Annotated[UserMessage | AssistantMessage | SystemMessage, Field(discriminator="role")]

# ---------------------------------------------------------------- tools


class Tool(_Wire):
    """A client tool. Anthropic-defined client tools (``bash_…``, ``text_editor_…``) are not served here."""

    type: Literal["custom"] | None = None
    name: str = Field(min_length=1)
    description: str = ""
    input_schema: dict[str, Any]


class ServerTool(_Wire):
    """One of Anthropic's server tools (``web_search_20250305``, ``code_execution_20250825``, ...): run by the
    server's own tools when it has them (``router.server_tools``), else not offered to the model."""

    type: Annotated[str, Field(pattern=r"^(web_search|code_execution)_\d{8}$")]
    name: str = ""


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "server" if isinstance(kind, str) and kind.startswith(("web_search_", "code_execution_")) else "client"


AnyTool = Annotated[Annotated[Tool, Tag("client")] | Annotated[ServerTool, Tag("server")],
                    Discriminator(_tool_kind)]


class _ToolChoiceBase(_Wire):
    disable_parallel_tool_use: bool = False


class ToolChoiceAuto(_ToolChoiceBase):
    type: Literal["auto"]


class ToolChoiceAny(_ToolChoiceBase):
    type: Literal["any"]


class ToolChoiceTool(_ToolChoiceBase):
    type: Literal["tool"]
    name: str


class ToolChoiceNone(_Wire):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone, Field(discriminator="type")
]

# ---------------------------------------------------------------- thinking, output


class ThinkingEnabled(_Wire):
    type: Literal["enabled"]
    budget_tokens: int = Field(ge=1)


class ThinkingAdaptive(_Wire):
    type: Literal["adaptive"]


class ThinkingDisabled(_Wire):
    type: Literal["disabled"]


ThinkingConfig = Annotated[ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled, Field(discriminator="type")]


class JsonOutputFormat(_Wire):
    type: Literal["json_schema"]
    # Named ``schema_`` because pydantic's BaseModel reserves ``schema``.
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(_Wire):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JsonOutputFormat | None = None


class Metadata(_Wire):
    user_id: str | None = None


# ---------------------------------------------------------------- requests


class CountTokensRequest(_Wire):
    """``POST /v1/messages/count_tokens``: everything that shapes the prompt, no sampling."""

    model: str = Field(min_length=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[AnyTool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None


class MessagesRequest(CountTokensRequest, ServerToolFields):
    """``POST /v1/messages``."""

    max_tokens: TokenLimit
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: TopK | None = Field(default=None, ge=0)
    metadata: Metadata | None = None
    stream: bool = False
    # LM Studio's field: the model's idle TTL in seconds (router.elastic), for models that scale.
    ttl: int | None = Field(default=None, ge=1)
